"""The stages' outputs, produced through confluent-kafka and awaited until the broker has them.

Why not faust's ``topic.send``: py-spy put faust's send path (channel, codec registry, future
bookkeeping) and aiokafka's pure-Python producer at about a third of a loaded worker.
librdkafka batches, partitions (murmur2, as Java, aiokafka and faust place keys) and speaks the
protocol in C, on its own threads.

At-least-once: a stage's input offsets count as handled only once the broker has everything
its batch produced (``acks=all``, idempotent), changelog records included
(``streams.runtime.changelogs``): a stage hands its batch over and goes on (``InOrder``), and
what must wait for the broker runs when it has it. A record that fails is produced again until
the broker has it: the batch is not done, and its input not handled, before that.

A failed record is not produced again alone: a later record of the call with the same key may
have been delivered meanwhile, and on a compacted changelog the older value would then win a
restore. Every record of the call for a topic that had a failure is produced again, in the
call's order (librdkafka keeps the order within a partition), so the last write of each key is
the last again; what was already delivered arrives twice, which at-least-once allows.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = 1.0
POLL_INTERVAL_S = 0.001  # between two servings of delivery reports, while any are awaited
BY_KEY = -1  # librdkafka's "unassigned" partition: its partitioner decides

Offsets = dict[tuple[str, int], int]


@dataclass(slots=True)  # not frozen: built per event (see outcomes.Emit)
class Record:
    """One Kafka record; ``partition`` -1 places it by its key (murmur2; random when None)."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int = BY_KEY


@dataclass(frozen=True, slots=True)
class Delivered:
    """What a delivery wrote: the highest offset per partition, and the topics it had to
    produce again (the deliveries after it produce theirs again too, see ``Outbox.start``)."""

    offsets: Offsets
    produced_again: frozenset[str]


Delivery = asyncio.Future[Delivered]


class _Batch:
    """Delivery reports of one ``deliver`` call, resolved when all are in."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.left = size
        self.failed: set[str] = set()  # topics with a record that was not delivered
        self.offsets: Offsets = {}  # the highest delivered offset per (topic, partition)
        self.done: asyncio.Future[None] = loop.create_future()

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        """Called by ``Producer.poll`` on the event loop (``Outbox._poll``), once per record."""
        if error is not None:
            log.warning("delivery to %s failed, will retry: %s", message.topic(), error)
            self.failed.add(message.topic())
        else:
            where = (message.topic(), message.partition())
            offset = message.offset()
            if offset > self.offsets.get(where, -1):
                self.offsets[where] = offset
        self.left -= 1
        if self.left == 0 and not self.done.done():
            self.done.set_result(None)


class Outbox:
    """One idempotent confluent-kafka producer per worker, started on first use.

    A task on the event loop polls it for delivery reports while any are awaited, and they
    settle each call's batch. Not a thread of its own: a report is a Python callback, and a
    thread taking the interpreter lock for each one from the stages (which hold it while they
    work) waited up to the switch interval (5 ms) every time.
    """

    def __init__(self, kafka_config: dict[str, str], linger_ms: float) -> None:
        self._config = {
            **kafka_config,
            "enable.idempotence": True,  # acks=all; retries neither duplicate nor reorder
            "acks": "all",
            "linger.ms": linger_ms,
            "partitioner": "murmur2_random",  # keyed records land where Java and faust put them
        }
        self._producer: Producer | None = None
        self._awaited: set[_Batch] = set()  # batches whose reports are not all in
        self._poller: asyncio.Task[None] | None = None

    def _started(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self._config)
        return self._producer

    def _await_reports(self, batch: _Batch) -> None:
        """Have the reports of ``batch`` served, by a task on the running loop."""
        self._awaited.add(batch)
        batch.done.add_done_callback(lambda _: self._awaited.discard(batch))
        loop = asyncio.get_running_loop()
        if self._poller is None or self._poller.done() or self._poller.get_loop() is not loop:
            self._poller = loop.create_task(self._poll())

    async def _poll(self) -> None:
        """Serve delivery reports every ``POLL_INTERVAL_S`` while any are awaited."""
        producer = self._started()
        while self._awaited:
            producer.poll(0)
            await asyncio.sleep(POLL_INTERVAL_S)

    async def deliver(self, records: list[Record]) -> Offsets:
        """Return once the broker has every record: the highest offset of each partition written.

        Runs to the end even when the caller is cancelled (a worker stopping), and only then
        lets the cancellation through: a caller never goes away with its records in flight.
        """
        if not records:
            return {}
        sending = await self.start(records)
        cancelled = False
        while not sending.done():
            try:
                await asyncio.shield(sending)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        return sending.result().offsets

    async def start(self, records: list[Record], after: Delivery | None = None) -> Delivery:
        """Hand ``records`` to librdkafka (returns once it has them all); the returned delivery
        settles once the broker has them *and* ``after`` has settled.

        A record that failed is produced again with every record of its topic in the call, and
        so is every record of that topic in the deliveries started after it: a later call's
        write of a key stays the last one, even when the earlier call had to go again.
        """
        producer = self._started()
        loop = asyncio.get_running_loop()
        batch = _Batch(loop, len(records))
        if records:
            self._await_reports(batch)
        pending = records
        while pending := _produce_until_full(producer, pending, batch):
            await asyncio.sleep(0.01)  # librdkafka's queue is full: let it drain
        return asyncio.ensure_future(self._settle(records, batch, after))

    async def _settle(
        self, records: list[Record], batch: _Batch, after: Delivery | None
    ) -> Delivered:
        if records:
            await batch.done
        offsets = dict(batch.offsets)
        failed = set(batch.failed)
        if after is not None:
            failed |= (await after).produced_again
        produced_again: set[str] = set()
        while failed:
            produced_again |= failed
            await asyncio.sleep(RETRY_BACKOFF_S)
            again = [record for record in records if record.topic in failed]
            batch = _Batch(asyncio.get_running_loop(), len(again))
            if again:
                self._await_reports(batch)
            while again := _produce_until_full(self._started(), again, batch):
                await asyncio.sleep(0.01)
            if batch.left:
                await batch.done
            for where, offset in batch.offsets.items():
                offsets[where] = max(offset, offsets.get(where, -1))
            failed = batch.failed
        return Delivered(offsets, frozenset(produced_again))

    def close(self, timeout_s: float = 30.0) -> None:
        """Deliver what is still queued."""
        if self._producer is None:
            return
        left = self._producer.flush(timeout_s)
        if left:
            log.error("%d output records not delivered at shutdown", left)


class InOrder:
    """One stage's deliveries: started one after another, settled in that order, at most
    ``depth`` of them on their way.

    A stage hands its next batch's records to librdkafka while the broker is still
    acknowledging the previous batches, instead of idling for every acknowledgement (about
    5 ms a batch on this broker, as long as a small batch's work). Whatever a batch's input
    must wait for (marked handled, so that a commit may pass it) runs in ``on_delivered``, once
    the broker has that batch and every batch before it.
    """

    def __init__(self, outbox: Outbox, depth: int) -> None:
        self._outbox = outbox
        self._depth = depth
        self._in_flight: deque[Delivery] = deque()
        # The last delivery started: the next one settles after it. Not the queue's tail: a
        # drain takes deliveries out of the queue before they settle, and a batch sent
        # meanwhile settled before them, its input marked handled and committed with a flush
        # that did not hold its table writes (a crash then lost them: make chaos, 2026-12-03).
        self._last: Delivery | None = None

    async def send(self, records: list[Record], on_delivered: Callable[[Delivered], None]) -> None:
        """Return once librdkafka has ``records``; ``on_delivered`` runs once the broker does."""
        while self._in_flight and (
            self._in_flight[0].done() or len(self._in_flight) >= self._depth
        ):
            await asyncio.shield(self._in_flight.popleft())  # goes on if the stage is stopped
        delivery = self._last = await self._outbox.start(records, self._last)

        def settled(done: Delivery) -> None:
            if not done.cancelled() and done.exception() is None:
                on_delivered(done.result())

        delivery.add_done_callback(settled)
        self._in_flight.append(delivery)

    async def drain(self) -> None:
        """Until every delivery started so far has settled."""
        while self._in_flight:
            await asyncio.shield(self._in_flight.popleft())
        if self._last is not None:  # one a send took out of the queue: it settles after the rest
            await asyncio.shield(self._last)


def _produce_until_full(producer: Producer, records: list[Record], batch: _Batch) -> list[Record]:
    """Hand ``records`` to librdkafka; return those that did not fit in its queue."""
    for n, record in enumerate(records):
        try:
            producer.produce(
                record.topic,
                record.value,
                record.key,
                record.partition,
                on_delivery=batch.on_delivery,
            )
        except BufferError:
            return records[n:]
    return []
