"""The declared stages (topology.stages) made runnable, here and nowhere else: each stage's
input read through librdkafka (streams.runtime.intake), its step applied, its records sent.

Every keyed stage is the same machine around a different pure step: take the messages waiting,
apply each message's records to the stage's table in the message's partition, hand each changed
key to the table once per batch (it holds the writes until the stage commits, then writes them
out with their changelog records: ``ChangelogTable.flush``), hand the batch's outputs over
together (records for the next stage in one envelope per partition), and go on with the next
batch while the broker acknowledges them. So adding or removing a stage is a change to the
declaration and its rule, never to this module.

At-least-once: no commit passes a message whose batch's outputs, or the changelog records of
the state it changed, the broker does not have (streams.runtime.delivery, ``InOrder``;
streams.runtime.intake). Every step is idempotent, so a redelivered batch changes nothing and
its outputs are simply sent again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from streams import native
from streams.rules.outcomes import BROADCAST, Emit, Source, coalesce
from streams.rules.steps import Policies, Stepped
from streams.runtime import envelopes
from streams.runtime.accounting import Counters
from streams.runtime.changelogs import Changelogs, ChangelogTable
from streams.runtime.delivery import Delivered, Outbox, Record
from streams.runtime.intake import Handle, HandledOffsets, Intake, Settle
from streams.runtime.output_encoding import Encode
from streams.runtime.rerendering import Rerendering
from streams.runtime.worker_app import WorkerApp
from streams.runtime.writer_schemas import WriterSchemas
from topology.stages import StageSpec
from topology.topics import Topology, partition_for

logger = logging.getLogger(__name__)

ApplyFirsts = Callable[[list[tuple[str, Any]]], None]


def _now() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Pipeline:
    """What every stage shares: where records go, how they are counted and sent."""

    topology: Topology
    stages: tuple[StageSpec, ...]
    policies: Policies
    counters: Counters
    handled: HandledOffsets
    outbox: Outbox
    kafka_config: dict[str, str]  # the stages' librdkafka consumers (streams.runtime.intake)
    commit_interval_s: float  # of the stages' input offsets
    changelogs: Changelogs  # the tables' changelog records, sent with each batch's outputs
    batch_size: int  # messages handled together, at most
    fetch_max_wait_ms: int  # librdkafka's fetch.wait.max.ms for the stages' inputs
    encode: Encode  # frames the Avro outputs (streams.runtime.output_encoding)
    # the attribute-firsts topic read to its end at start-up (streams.runtime.attribute_firsts)
    types_ready: asyncio.Event
    # attribute-firsts records a routing step just produced, for this worker's types at once
    apply_firsts: ApplyFirsts
    writer_schemas: WriterSchemas | None = None  # Confluent-framed input (None: no registry)
    rerenderings: list[Rerendering] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stage_inputs = {stage.input for stage in self.stages}
        # the topic of every stream a stage reads or writes, looked up for each record sent
        self._specs = {
            name: self.topology.stream(name)
            for stage in self.stages
            for name in (stage.input, *stage.outputs)
        }
        self._intakes: dict[str, Intake] = {}  # by input topic
        # the envelopes this worker will read back, kept decoded (runtime.envelopes)
        self._sealed = envelopes.Sealed(self._reads)

    def _reads(self, topic: str, partition: int) -> bool:
        intake = self._intakes.get(topic)
        return intake is not None and intake.reads(partition)

    def install(self, app: WorkerApp, tables: dict[str, ChangelogTable]) -> None:
        """Each stage's input read through librdkafka, in faust's group (runtime.intake)."""
        logger.info("rules %s", native.mode())
        for stage in self.stages:
            if stage.table is None:
                handle = self._routing(stage)
            else:
                rerendering = None
                if stage.rerender is not None:
                    rerendering = Rerendering(stage, tables[stage.table.name], self.policies)
                    self.rerenderings.append(rerendering)
                handle = self._keyed(stage, tables[stage.table.name], rerendering)
            topic = self._specs[stage.input].name
            self._intakes[topic] = Intake(
                app,
                topic,
                self.kafka_config,
                self.batch_size,
                self.fetch_max_wait_ms,
                self.commit_interval_s,
                handle,
                self.outbox,
                self.handled,
                writes_behind=stage.table is not None,
            )
            self._intakes[topic].install()

    def _account(self, stepped: Stepped) -> None:
        if stepped.outcome is not None:
            self.counters.count_outcome(stepped.outcome)
        self.counters.count_refusals(stepped.emits)

    def _routing(self, stage: StageSpec) -> Handle:
        """A stateless stage on the input: raw messages in, the records of their decisions out.

        The rules read Confluent-framed input with the writer schemas fetched for the batch
        beforehand (a registry that fails holds the batch, see streams.runtime.writer_schemas).
        """
        policies = self.policies
        if self.writer_schemas is not None:
            inputs = replace(policies.inputs, writer_schemas=self.writer_schemas.known)
            policies = replace(policies, inputs=inputs)

        async def route(messages: list[Message]) -> tuple[list[Record], Settle]:
            await self._types_decided()
            if self.writer_schemas is not None:
                await self.writer_schemas.resolve(message.value() for message in messages)
            emits: list[Emit] = []
            now = _now()
            for message in messages:
                kind, timestamp = message.timestamp()
                arrival = timestamp if kind != TIMESTAMP_NOT_AVAILABLE else None
                if arrival is not None:
                    self.counters.observe_input_lag((now - arrival) / 1000)
                source = Source(message.topic(), message.partition(), message.offset(), arrival)
                stepped = stage.step(message.value(), source, policies, now)
                self._account(stepped)
                if stepped.firsts:
                    self.apply_firsts(list(stepped.firsts))
                emits += stepped.emits
            return self._records(emits), self._settled(None, None)

        return route

    def _keyed(
        self, stage: StageSpec, table: ChangelogTable, rerendering: Rerendering | None
    ) -> Handle:
        """A keyed stage: its records' table partition is the one of the envelope's message."""

        def step(message: Message, changed: dict[str, Any]) -> list[Emit]:
            """The message's records stepped; the states they change left in ``changed``
            (its partition's, for the batch)."""
            emits: list[Emit] = []
            offset, partition = message.offset(), message.partition()
            now = _now()  # one clock reading per envelope, as the routing step's per batch
            for index, (key, value) in enumerate(self._sealed.unseal(message.value())):
                before = changed[key] if key in changed else table.read(partition, key)
                stepped = stage.step(before, key, value, (offset, index), self.policies, now)
                # A step that changes nothing hands back the state it was given (an equal copy
                # would only be written again); comparing by value walked both states, 2 us an
                # event, to learn that they differ.
                if stepped.state is not before:
                    changed[key] = stepped.state
                self._account(stepped)
                if stepped.firsts:
                    self.apply_firsts(list(stepped.firsts))
                if rerendering is not None:
                    rerendering.note(partition, stepped.renders)
                emits += stepped.emits
            return emits

        async def handle(messages: list[Message]) -> tuple[list[Record], Settle]:
            if not messages:  # the intake commits: the writes held so far go out (intake.FLUSH)
                table.flush()
                return self._records([]), self._settled(None, None)
            await self._types_decided()
            emits: list[Emit] = []
            # A key changed by several records of a batch is handed to the table once
            changed: dict[int, dict[str, Any]] = {}
            for message in messages:
                emits += step(message, changed.setdefault(message.partition(), {}))
            for partition, states in changed.items():
                for key, state in states.items():
                    table.write(partition, key, state)
            marks = None
            if rerendering is not None:
                partitions = list(dict.fromkeys(message.partition() for message in messages))
                again = rerendering.catch_up(partitions)
                self.counters.count_refusals(again)
                emits += again
                marks = rerendering.marks(partitions)
            return self._records(emits), self._settled(rerendering, marks)

        return handle

    async def _types_decided(self) -> None:
        """Nothing is handled before the worker knows the custom attribute types decided so far."""
        while not self.types_ready.is_set():
            try:
                await asyncio.wait_for(self.types_ready.wait(), timeout=10)
            except TimeoutError:
                logger.warning("still waiting for the attribute-firsts reader")

    def _settled(
        self, rerendering: Rerendering | None, marks: dict[int, dict[str, Any]] | None
    ) -> Settle:
        """What follows once the broker has a batch's records: where the changelogs end, and the
        rendering marks those records stand for."""

        def settled(delivered: Delivered) -> None:
            self.changelogs.persist(delivered.offsets)
            if rerendering is not None and marks is not None:
                rerendering.store(marks)  # written out with the stage's next flush

        return settled

    def _records(self, emits: list[Emit]) -> list[Record]:
        """Outputs one by one, the latest per key; records for another stage in one envelope per
        partition; the changelog records of the tables' writes so far."""
        records: list[Record] = []
        by_partition: dict[tuple[str, int], list[tuple[str, Any]]] = {}
        for emit in coalesce(emits):
            spec = self._specs[emit.output]
            if emit.key == BROADCAST:
                for partition in range(spec.partitions):
                    key = envelopes.broadcast_key(partition, spec.partitions)
                    by_partition.setdefault((spec.name, partition), []).append((key, emit.value))
            elif emit.output in self._stage_inputs:
                where = (spec.name, partition_for(emit.key, spec.partitions))
                by_partition.setdefault(where, []).append((emit.key, emit.value))
            elif spec.schema is None:  # internal, JSON (the attribute-firsts)
                records.append(Record(spec.name, emit.key.encode(), orjson.dumps(emit.value)))
            else:
                self.counters.count_published(emit)
                key = None if emit.key is None else emit.key.encode()
                value = None if emit.value is None else self.encode(spec, emit.value)
                records.append(Record(spec.name, key, value))
        for (topic, partition), items in by_partition.items():
            records += [
                Record(topic, None, envelope, partition)
                for envelope in self._sealed.seal(topic, partition, items)
            ]
        return records + self.changelogs.take()
