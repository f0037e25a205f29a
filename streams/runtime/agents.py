"""The declared stages (topology.stages) made runnable, here and nowhere else: one faust agent
per keyed stage, the librdkafka intake for the stateless stage on the input.

Every keyed agent is the same machine around a different pure step: take what is waiting in
batches, apply each message's records to the stage's table in the message's partition, write
each changed key once per message, send the batch's outputs together (records for the next stage
in one envelope per partition) with the changelog records of its writes, await the broker, then
mark the batch handled for the commit guard. So adding or removing a stage is a change to the
declaration and its rule, never to this module.

At-least-once: faust acks a batch only after the body has run, the body returns only once the
broker has the batch's outputs (streams.runtime.delivery), and no commit passes a message not
marked handled (streams.runtime.commit_guard). Every step is idempotent, so a redelivered batch
changes nothing and its outputs are simply sent again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import faust
import orjson
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message
from faust.types import EventT

from streams.rules.outcomes import BROADCAST, Emit, Source, coalesce
from streams.rules.steps import Policies, Stepped
from streams.runtime import envelopes
from streams.runtime.accounting import Counters
from streams.runtime.changelogs import Changelogs, ChangelogTable
from streams.runtime.commit_guard import HandledOffsets
from streams.runtime.delivery import Outbox, Record
from streams.runtime.faust_internals import eager_batches
from streams.runtime.intake import Intake, Route
from streams.runtime.output_encoding import Encode
from streams.runtime.rerendering import Rerendering
from streams.runtime.writer_schemas import WriterSchemas
from topology.stages import StageSpec
from topology.topics import Topology, partition_for

logger = logging.getLogger(__name__)

Handle = Callable[[EventT], list[Emit]]
ApplyFirsts = Callable[[list[tuple[str, Any]]], None]


def _now() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Pipeline:
    """What every stage's agent shares: where records go, how they are counted and sent."""

    topology: Topology
    stages: tuple[StageSpec, ...]
    policies: Policies
    counters: Counters
    handled: HandledOffsets
    outbox: Outbox
    kafka_config: dict[str, str]  # the input's librdkafka consumer (streams.runtime.intake)
    commit_interval_s: float  # of the input's offsets
    changelogs: Changelogs  # the tables' changelog records, sent with each batch's outputs
    batch_size: int
    batch_linger_s: float  # how long a batch gathers after its first message
    encode: Encode  # frames the Avro outputs (streams.runtime.output_encoding)
    # the attribute-firsts topic read to its end at start-up (streams.runtime.attribute_firsts)
    types_ready: asyncio.Event
    # attribute-firsts records a routing step just produced, for this worker's types at once
    apply_firsts: ApplyFirsts
    writer_schemas: WriterSchemas | None = None  # Confluent-framed input (None: no registry)
    rerenderings: list[Rerendering] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stage_inputs = {stage.input for stage in self.stages}

    def install(self, app: faust.App, tables: dict[str, ChangelogTable]) -> None:
        """One agent per keyed stage, reading the stage's input topic as raw bytes; the
        stateless stage on the input reads it through librdkafka (streams.runtime.intake)."""
        for stage in self.stages:
            spec = self.topology.stream(stage.input)
            if stage.table is None:
                Intake(
                    app,
                    spec.name,
                    self.kafka_config,
                    self.batch_size,
                    self.commit_interval_s,
                    self._routing(stage),
                    self.handled,
                ).install()
                continue
            topic = app.topic(
                spec.name,
                partitions=spec.partitions,
                key_serializer="raw",
                value_serializer="raw",
                internal=False,  # created up front by topology.admin, never by faust
            )
            rerendering = None
            if stage.rerender is not None:
                rerendering = Rerendering(stage, tables[stage.table.name], self.policies)
                self.rerenderings.append(rerendering)
            agent = self._batches(self._keyed(stage, tables, rerendering), rerendering)
            app.agent(topic, name=stage.name, concurrency=1)(agent)

    def _account(self, stepped: Stepped) -> None:
        if stepped.outcome is not None:
            self.counters.count_outcome(stepped.outcome)
        self.counters.count_refusals(stepped.emits)

    def _routing(self, stage: StageSpec) -> Route:
        """A stateless stage on the input: raw messages in, their decisions out, sent.

        The rules read Confluent-framed input with the writer schemas fetched for the batch
        beforehand (a registry that fails holds the batch, see streams.runtime.writer_schemas).
        """
        policies = self.policies
        if self.writer_schemas is not None:
            inputs = replace(policies.inputs, writer_schemas=self.writer_schemas.known)
            policies = replace(policies, inputs=inputs)

        async def route(messages: list[Message]) -> None:
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
            await self._send(emits)

        return route

    def _keyed(
        self,
        stage: StageSpec,
        tables: dict[str, ChangelogTable],
        rerendering: Rerendering | None,
    ) -> Handle:
        """A keyed stage: its records' table partition is the one of the envelope's message."""
        assert stage.table is not None
        table = tables[stage.table.name]

        def handle(event: EventT) -> list[Emit]:
            # Each changed key is written once per envelope, like Kafka Streams' record cache:
            # one store write and one changelog record instead of one per update.
            changed: dict[str, Any] = {}
            emits: list[Emit] = []
            offset, partition = event.message.offset, event.message.partition
            for index, (key, value) in enumerate(envelopes.unseal(event.value)):
                before = changed[key] if key in changed else table.read(partition, key)
                stepped = stage.step(before, key, value, (offset, index), self.policies, _now())
                if stepped.state != before:
                    changed[key] = stepped.state
                self._account(stepped)
                if stepped.firsts:
                    self.apply_firsts(list(stepped.firsts))
                if rerendering is not None:
                    rerendering.note(partition, stepped.renders)
                emits += stepped.emits
            for key, state in changed.items():
                table.write(partition, key, state)
            return emits

        return handle

    async def _types_decided(self) -> None:
        """Nothing is handled before the worker knows the custom attribute types decided so far."""
        while not self.types_ready.is_set():
            try:
                await asyncio.wait_for(self.types_ready.wait(), timeout=10)
            except TimeoutError:
                logger.warning("still waiting for the attribute-firsts reader")

    def _batches(
        self, handle: Handle, rerendering: Rerendering | None
    ) -> Callable[..., AsyncIterator[None]]:
        """The agent body: batches of up to ``batch_size`` messages, handed over
        ``batch_linger_s`` after their first arrived (``faust_internals.eager_batches``)."""

        async def agent(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            batch: list[EventT]
            async for batch in eager_batches(stream, self.batch_size, self.batch_linger_s):
                await self._types_decided()
                emits: list[Emit] = []
                for event in batch:
                    emits += handle(event)
                if rerendering is not None:
                    again = rerendering.catch_up(batch)
                    self.counters.count_refusals(again)
                    emits += again
                await self._send(emits)
                if rerendering is not None:
                    rerendering.store(batch)
                    await self._send([])  # the marks' changelog records, if they changed
                for event in batch:
                    self.handled.mark(event.message)
                yield None

        return agent

    async def _send(self, emits: list[Emit]) -> None:
        """Outputs one by one, the latest per key; records for another stage in one envelope per
        partition; the changelog records of the tables' writes. Returns once the broker has them
        all (see streams.runtime.delivery), having noted where the changelogs now end."""
        records: list[Record] = []
        by_partition: dict[tuple[str, int], list[tuple[str, Any]]] = {}
        for emit in coalesce(emits):
            spec = self.topology.stream(emit.output)
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
                Record(topic, None, envelope, partition) for envelope in envelopes.seal(items)
            ]
        records += self.changelogs.take()
        self.changelogs.persist(await self.outbox.deliver(records))
