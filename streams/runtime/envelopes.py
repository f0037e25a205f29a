"""Envelopes: many keyed records in one message of a repartition topic.

Per message, faust and aiokafka cost far more than our rules do (consume, stream bookkeeping,
acks, produce), and every input event crosses three to four repartition hops. So a stage sends
the records it produced for one partition of the next stage together: one message per
destination partition instead of one per record. Every record in an envelope is keyed for that
partition (the same murmur2 placement a keyed send would use), so the receiving stage still only
touches the table partition of the message it is processing.

Nothing else changes: the receiver applies the records in order, exactly as if they had come one
by one, and at-least-once redelivers whole envelopes, which the idempotent stages absorb.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from streams.rules.outcomes import BROADCAST
from topology.topics import partition_for

# Well under Kafka's default 1 MiB message limit (broker and producer), whatever the records.
MAX_ENVELOPE_BYTES = 512 * 1024


def seal(records: list[tuple[str, Any]], limit: int = MAX_ENVELOPE_BYTES) -> list[bytes]:
    """The envelopes (JSON arrays of ``[key, value]``) carrying ``records`` in order.

    A record larger than ``limit`` travels alone rather than being refused.
    """
    # Nearly always they all fit in one: then that is their array encoded at once (orjson
    # writes no spaces, so these are the very bytes the joining below would make).
    whole = orjson.dumps(records)
    if len(whole) <= limit:
        return [whole] if records else []
    envelopes: list[bytes] = []
    batch: list[bytes] = []
    size = 1  # the envelope's length so far: "[" and "]", less the comma its first item saves
    for key, value in records:
        item = orjson.dumps([key, value])
        if batch and size + len(item) + 1 > limit:
            envelopes.append(b"[" + b",".join(batch) + b"]")
            batch, size = [], 1
        batch.append(item)
        size += len(item) + 1
    if batch:
        envelopes.append(b"[" + b",".join(batch) + b"]")
    return envelopes


def unseal(envelope: bytes) -> list[list[Any]]:
    """The records of an envelope, ``[key, value]`` each, in the order they were sealed."""
    records: list[list[Any]] = orjson.loads(envelope)
    return records


@functools.cache
def broadcast_key(partition: int, partitions: int) -> str:
    """The key of a broadcast record's copy for ``partition``: one a keyed send would place
    there (an envelope holds only records keyed for its partition)."""
    n = 0
    while partition_for(f"{BROADCAST}-{n}", partitions) != partition:
        n += 1
    return f"{BROADCAST}-{n}"
