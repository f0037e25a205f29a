"""Envelopes: many keyed records in one message of a repartition topic.

Per message, faust and aiokafka cost far more than our rules do (consume, stream bookkeeping,
acks, produce), and every input event crosses three to four repartition hops. So a stage sends
the records it produced for one partition of the next stage together: one message per
destination partition instead of one per record. Every record in an envelope is keyed for that
partition (the same murmur2 placement a keyed send would use), so the receiving stage still only
touches the table partition of the message it is processing.

Nothing else changes: the receiver applies the records in order, exactly as if they had come one
by one, and at-least-once redelivers whole envelopes, which the idempotent stages absorb.

Most envelopes a worker sends are read back by that same worker: its next stage owns the
partition (with one worker, every one). Decoding them again cost ~7 % of a loaded worker's main
thread, to rebuild objects it had just encoded, so ``Sealed`` keeps the records of the envelopes
sent to partitions this worker reads, and the receiving stage takes them by the envelope's bytes.
The envelope still goes through Kafka and is still read from there, in offset order, so
positions, commits and redelivery are those of any envelope; only its decoding is skipped. The
records are the very objects sealed, so they must be what decoding would give back: JSON values
with lists and string keys only, never changed by the step they are handed to (tests/simulation
hands records over either way and checks both).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from streams.rules.outcomes import BROADCAST
from topology.topics import partition_for

# Well under Kafka's default 1 MiB message limit (broker and producer), whatever the records.
MAX_ENVELOPE_BYTES = 512 * 1024
# Envelope bytes whose records ``Sealed`` keeps, at most (a few batches are in flight; what a
# lagging stage has not read by then is decoded as usual).
MAX_KEPT_BYTES = 16 * 2**20


def seal(records: list[tuple[str, Any]], limit: int = MAX_ENVELOPE_BYTES) -> list[bytes]:
    """The envelopes (JSON arrays of ``[key, value]``) carrying ``records`` in order.

    A record larger than ``limit`` travels alone rather than being refused.
    """
    return [envelope for envelope, _ in pieces(records, limit)]


def pieces(
    records: list[tuple[str, Any]], limit: int = MAX_ENVELOPE_BYTES
) -> list[tuple[bytes, list[tuple[str, Any]]]]:
    """``seal(records)``, each envelope with the records it carries."""
    # Nearly always they all fit in one: then that is their array encoded at once (orjson
    # writes no spaces, so these are the very bytes the joining below would make).
    whole = orjson.dumps(records)
    if len(whole) <= limit:
        return [(whole, records)] if records else []
    sealed: list[tuple[bytes, list[tuple[str, Any]]]] = []
    batch: list[bytes] = []
    first = 0  # the index of the batch's first record
    size = 1  # the envelope's length so far: "[" and "]", less the comma its first item saves
    for n, (key, value) in enumerate(records):
        item = orjson.dumps([key, value])
        if batch and size + len(item) + 1 > limit:
            sealed.append((b"[" + b",".join(batch) + b"]", records[first:n]))
            batch, size, first = [], 1, n
        batch.append(item)
        size += len(item) + 1
    if batch:
        sealed.append((b"[" + b",".join(batch) + b"]", records[first:]))
    return sealed


def unseal(envelope: bytes) -> list[list[Any]]:
    """The records of an envelope, ``[key, value]`` each, in the order they were sealed."""
    records: list[list[Any]] = orjson.loads(envelope)
    return records


Keyed = Sequence[Any]  # one record of an envelope: [key, value] decoded, (key, value) as sealed


class Sealed:
    """The records of the envelopes this worker sent to partitions it reads, until it reads them
    (module docstring); the oldest go first beyond ``limit_bytes`` of envelopes."""

    def __init__(
        self, reads: Callable[[str, int], bool], limit_bytes: int = MAX_KEPT_BYTES
    ) -> None:
        self._reads = reads  # whether this worker reads (topic, partition) now
        self._limit = limit_bytes
        self._kept: OrderedDict[bytes, Sequence[Keyed]] = OrderedDict()
        self._bytes = 0

    def seal(self, topic: str, partition: int, records: list[tuple[str, Any]]) -> list[bytes]:
        """``seal(records)``, remembering each envelope's records when this worker reads the
        partition. A batch that lagged behind makes envelopes of its own over the limit (a
        first batch after start-up may, or one under full load): kept piece by piece too."""
        sealed = pieces(records)
        if self._reads(topic, partition):
            for envelope, carried in sealed:
                if envelope not in self._kept:
                    self._kept[envelope] = carried
                    self._bytes += len(envelope)
            while self._bytes > self._limit:
                envelope, _ = self._kept.popitem(last=False)
                self._bytes -= len(envelope)
        return [envelope for envelope, _ in sealed]

    def unseal(self, envelope: bytes) -> Sequence[Keyed]:
        """The records of ``envelope``: those sealed here, else decoded."""
        records = self._kept.pop(envelope, None)
        if records is None:
            return unseal(envelope)
        self._bytes -= len(envelope)
        return records


@functools.cache
def broadcast_key(partition: int, partitions: int) -> str:
    """The key of a broadcast record's copy for ``partition``: one a keyed send would place
    there (an envelope holds only records keyed for its partition)."""
    n = 0
    while partition_for(f"{BROADCAST}-{n}", partitions) != partition:
        n += 1
    return f"{BROADCAST}-{n}"
