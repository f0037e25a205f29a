"""The declared stages (topology.stages) in-process, with Kafka's freedoms made explicit and random.

Each stage's input is a set of partitions; a message goes to the partition of its key (or a random
one for unkeyed input); at every step any non-empty partition may be the next to deliver, which is
all the ordering freedom a real cluster with several workers has. Internal records and table
values go through JSON, as they do through the changelog and repartition topics.

With ``crash_rate`` > 0 it also plays faust's at-least-once failure: table writes land at once,
while outputs are published only when the partition commits; a crash drops the unpublished
outputs and redelivers every uncommitted message, to a table that already holds their effects.

Records for a stage go through JSON half of the time, and are handed over as the very objects
emitted the other half (as a worker reads its own envelopes back, runtime.envelopes.Sealed): so
they must be JSON values already, and no step may change the record it is given.

Custom attribute types play as in the runtime: the attribute-firsts records a step learns join
the one view at once, as do those published (every worker reads that topic); a stage that renders
by them checks, after each record of a partition and once more when all is quiet (the runtime's
rechecks), whether the decisions moved on since that partition last rendered: then every record
of the partition is rendered again, and the new marks count only once that is committed.
"""

from __future__ import annotations

import json
import random
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from streams.rules.attribute_types import AttributeTypes, Catalog, Rendered
from streams.rules.custom_attributes import AttributePolicy
from streams.rules.events import AfterErasure
from streams.rules.outcomes import (
    ATTRIBUTE_FIRSTS,
    BROADCAST,
    MERGES,
    PROFILES,
    REJECTIONS,
    Emit,
    Source,
    coalesce,
)
from streams.rules.steps import Policies
from topology.avro import IDENTIFY_EVENT, PROFILE, PROFILE_MERGE, REJECTION, AvroSchema
from topology.stages import IDENTIFY_EVENTS, STAGES

STAGE_BY_INPUT = {stage.input: stage for stage in STAGES}


@dataclass
class Outputs:
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    merges: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    deduplicated: set[str] = field(default_factory=set)  # messageIds the records remember
    types: AttributeTypes | None = None  # the custom attribute types the run decided


def _partition(key: str | None, partitions: int, rng: random.Random) -> int:
    if key is None:
        return rng.randrange(partitions)
    return zlib.crc32(key.encode()) % partitions


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _wire(schema: AvroSchema, record: dict[str, Any]) -> dict[str, Any]:
    """What a consumer of the output topic reads: the record after Avro encode and decode."""
    return schema.decode(schema.encode(record))


def simulate(
    messages: list[tuple[str | None, Any]],
    partitions: int = 4,
    seed: int = 0,
    crash_rate: float = 0.0,
    policy: AttributePolicy | None = None,
    catalog: Catalog | None = None,
    after_erasure: AfterErasure = "recreate",
) -> Outputs:
    policy = policy or AttributePolicy()
    policies = Policies(
        attributes=policy,
        types=AttributeTypes(catalog or Catalog(), policy.max_per_type),
        after_erasure=after_erasure,
    )
    rng = random.Random(seed)
    queues: dict[tuple[str, int], deque] = {}
    offsets: dict[tuple[str, int], int] = {}
    uncommitted: dict[tuple[str, int], list[tuple[Any, Any]]] = {}
    unpublished: dict[tuple[str, int], list[Emit]] = {}

    def put(stage: str, key: str | None, value: Any) -> None:
        if key == BROADCAST:
            for partition in range(partitions):
                put_on((stage, partition), f"{BROADCAST}-{partition}", value)
        else:
            put_on((stage, _partition(key, partitions, rng)), key, value)

    def put_on(queue: tuple[str, int], key: str | None, value: Any) -> None:
        offset = offsets.get(queue, 0)  # fixed when published: a redelivery keeps it
        offsets[queue] = offset + 1
        queues.setdefault(queue, deque()).append((key, (value, offset)))

    for key, value in messages:
        put(
            IDENTIFY_EVENTS,
            key,
            value if isinstance(value, bytes) else IDENTIFY_EVENT.encode(value),
        )

    tables: dict[str, dict[str, Any]] = {s.table.name: {} for s in STAGES if s.table}
    out = Outputs()

    def emit_all(emits: list[Emit]) -> None:
        for e in emits:
            if e.output in STAGE_BY_INPUT:
                if rng.random() < 0.5:  # as runtime.envelopes.Sealed hands a worker's own over
                    assert _json(e.value) == e.value, f"not a JSON value for {e.output}: {e.value}"
                    put(e.output, e.key, e.value)
                else:  # as read from the topic
                    put(e.output, e.key, _json(e.value))
            elif e.output == PROFILES:
                if e.value is None:
                    out.profiles.pop(e.key, None)
                else:
                    out.profiles[e.key] = _wire(PROFILE, e.value)
            elif e.output == MERGES:
                if e.value is None:
                    out.merges.pop(e.key, None)
                else:
                    out.merges[e.key] = _wire(PROFILE_MERGE, e.value)
            elif e.output == REJECTIONS:
                out.rejections.append(_wire(REJECTION, e.value))
            elif e.output == ATTRIBUTE_FIRSTS:
                policies.types.add(e.key, _json(e.value))

    rendered: dict[tuple[str, int], Rendered] = {}  # committed marks, per partition
    pending: dict[tuple[str, int], Rendered] = {}  # marks of what is not committed yet

    def commit(queue: tuple[str, int]) -> None:
        emit_all(coalesce(unpublished.pop(queue, [])))
        uncommitted.pop(queue, None)
        if queue in pending:
            rendered[queue] = pending.pop(queue)

    def crash(queue: tuple[str, int]) -> None:
        unpublished.pop(queue, None)
        pending.pop(queue, None)
        queues[queue].extendleft(reversed(uncommitted.pop(queue, [])))

    def marks(queue: tuple[str, int]) -> Rendered:
        if queue not in pending:
            pending[queue] = Rendered(rendered[queue].marks if queue in rendered else {})
        return pending[queue]

    def catch_up(queue: tuple[str, int]) -> None:
        """Render again what changed decisions affect in this partition, if anything."""
        stage, partition = queue
        spec = STAGE_BY_INPUT[stage]
        assert spec.rerender is not None and spec.table is not None
        stale = marks(queue).stale(policies.types)
        if stale:
            table = tables[spec.table.name]
            for key in sorted(table):
                if _partition(key, partitions, rng) == partition:
                    emits = spec.rerender(table[key], key, stale, policies, 0)
                    unpublished.setdefault(queue, []).extend(emits)
            pending[queue] = marks(queue).caught_up(policies.types)

    while True:
        ready = [q for q in queues if queues[q]]
        if not ready:
            for queue in [q for q, marks in rendered.items() if marks.stale(policies.types)]:
                catch_up(queue)  # the runtime's recheck of a partition with no more input
                uncommitted.setdefault(queue, [])
            if not uncommitted:
                out.deduplicated = {
                    entry[1]
                    for table in tables.values()
                    for record in table.values()
                    if isinstance(record, dict)
                    for entry in record.get("messages", ())
                }
                out.types = policies.types
                return out
            for queue in list(uncommitted):
                commit(queue)
            continue
        queue = rng.choice(ready)
        stage, partition = queue
        key, value = queues[queue].popleft()
        uncommitted.setdefault(queue, []).append((key, value))
        spec = STAGE_BY_INPUT[stage]
        value, offset = value
        if spec.table is None:
            stepped = spec.step(value, Source("in", partition, offset), policies, 0)
        else:
            table = tables[spec.table.name]
            before = table.get(key)
            given, handed = repr(before), repr(value)
            stepped = spec.step(before, key, value, (offset, 0), policies, 0)
            assert repr(before) == given, f"{spec.name} changed the state it was given"
            assert repr(value) == handed, f"{spec.name} changed the record it was given"
            if stepped.state is None:
                table.pop(key, None)
            elif rng.random() < 0.5:  # as the runtime's tables keep recent values, decoded
                table[key] = stepped.state
            else:  # as read from RocksDB
                table[key] = _json(stepped.state)
        for first_key, stamp in stepped.firsts:
            policies.types.add(first_key, stamp)
        undeclared = {e.output for e in stepped.emits} - set(spec.outputs)
        assert not undeclared, f"{spec.name} emitted to undeclared {undeclared}"
        unpublished.setdefault(queue, []).extend(stepped.emits)
        if spec.rerender is not None:
            marks(queue).note(stepped.renders, policies.types)
            catch_up(queue)
        if crash_rate and rng.random() < crash_rate:
            crash(queue)
        elif not crash_rate or rng.random() < 0.3:
            commit(queue)
