"""A stage's input topic, read through librdkafka; faust's consumer group still decides who
reads what, and faust's tables still hold the state.

faust's consumer path costs ~130 us per message before any work is done (its fetch loop, stream
bookkeeping, acks), and its fetches are pure Python on a thread of their own, fighting the
stages for the interpreter: on the input, one message per event, that alone capped a worker at
~7,000 events/s, and on the inner hops a record waited 15-60 ms (sometimes 500) between the
broker having it and faust handing it over, against 4-10 ms through librdkafka on the input.
So every stage reads its input here, and faust keeps what it is good at: the group and its
assignment, tables, changelog recovery, commits.

* faust's group subscribes to every stage's input topic, so its assignor gives each worker its
  partitions (co-partitioned with the table changelogs, as for any faust agent) and
  ``kafka-consumer-groups --describe`` shows owners and lag, but faust never fetches them
  (``faust_internals.never_fetch``);
* a librdkafka consumer on a thread of its own is assigned those partitions by hand, at the
  group's committed offsets (it never joins the group), and queues batches for the event loop
  without waiting for it to take them (it waits only while ``QUEUED_BATCHES`` wait);
* a batch is handled only while faust lets messages flow: not during a rebalance, and not
  before the tables of newly assigned partitions are restored (``faust_internals.flowing``);
* each batch is handled there and its records handed to the ``Outbox`` (the next batch is
  handled while the broker acknowledges them, ``InOrder``); once the broker has them its
  offsets count as done, and they are committed every ``commit_interval_s`` through faust's
  consumer, in faust's group: at least once;
* a stage with a table holds its writes until then (``ChangelogTable.flush``): before each
  commit it handles a batch of no messages (``FLUSH``), which writes them out, and only the
  offsets done before that batch, once the broker has it too, are committed;
* when the group takes partitions away, their queued batches are dropped, the batches in
  flight are delivered and their offsets committed before faust lets them go; on shutdown the
  same for all, before faust closes the tables (``WorkerApp.on_stopping``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import faust
from confluent_kafka import OFFSET_STORED, Consumer, Message, TopicPartition
from faust.types import TP

from streams.runtime import faust_internals, garbage_collection
from streams.runtime.delivery import Delivered, InOrder, Outbox, Record
from streams.runtime.watchdog import EXIT_STALLED
from streams.runtime.worker_app import WorkerApp

logger = logging.getLogger(__name__)

Settle = Callable[[Delivered], None]  # what follows once the broker has a batch's records
# A batch of messages handled: the records to deliver, and what follows their delivery. A
# handle awaits only before it changes anything (the custom attribute types, the registry's
# writer schemas), so a batch still waiting there can be dropped and read again.
Handle = Callable[[list[Message]], Awaitable[tuple[list[Record], Settle]]]
# Batches read ahead of handling, at most (and one more in the reader's hands). Two, once the
# reader stopped waiting for the loop, kept up to 2 x MAX_BATCH_BYTES more of a backlog decoded
# per stage: peak RSS +30-45 MiB on the peers input, for no more events/s.
QUEUED_BATCHES = 1
# A batch's messages, at most (but one message, whatever its size): a keyed stage's input is
# envelopes of up to 512 KiB, and a backlog (a replay) fetches thousands of them at once.
MAX_BATCH_BYTES = 4 * 2**20
Queued = tuple[int, list[Message]]  # assignment epoch, messages
# The batch a stage with a table is given before a commit: it writes out what it holds
FLUSH: list[Message] = []
IN_FLIGHT = 4  # batches handed over before the broker acknowledged the first
IDLE_WAIT_S = 0.1  # a consume call waiting for the first message (stopping is seen as often)


class HandledOffsets:
    """Per partition, the highest offset a stage has handled (its batch's records are on the
    broker), and in which consumer generation: what the intakes may commit, and what the stall
    watchdog watches move."""

    def __init__(self) -> None:
        self._high: dict[TP, tuple[int, int]] = {}

    def mark_offset(self, tp: TP, generation: int, offset: int) -> None:
        """The message at ``offset`` of ``tp`` is handled (read in ``generation``)."""
        mark = (generation, offset)
        # generations only grow: a late message of an older one says nothing about this one
        if mark > self._high.get(tp, (-1, -1)):
            self._high[tp] = mark

    def limit(self, tp: TP, generation: int) -> int | None:
        """The offset after the last one handled in ``generation`` (None: none was)."""
        generation_high = self._high.get(tp)
        if generation_high is None or generation_high[0] != generation:
            return None
        return generation_high[1] + 1


class Intake:
    """The partitions of one stage's input this worker is given, read and handled (module
    docstring)."""

    def __init__(
        self,
        app: WorkerApp,
        topic: str,
        kafka_config: dict[str, str],
        batch_size: int,
        fetch_max_wait_ms: int,
        commit_interval_s: float,
        handle: Handle,
        outbox: Outbox,
        handled: HandledOffsets,
        writes_behind: bool = False,
    ) -> None:
        self._app = app
        self._topic = topic
        self._config = {
            **kafka_config,
            "group.id": app.conf.id,  # reads the group's committed offsets; never joins it
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": fetch_max_wait_ms,  # a partition at its end is asked this often
        }
        self._batch_size = batch_size
        self._commit_interval_s = commit_interval_s
        self._handle = handle
        self._writes_behind = writes_behind  # handles FLUSH before committing
        self._unflushed = False  # a batch was handled since the last FLUSH
        self._sending = InOrder(outbox, IN_FLIGHT)
        self._handled = handled
        self._epoch = 0  # one per assignment: batches read under another are dropped
        self._assigned: set[int] = set()
        self._generation = -1
        self._done: dict[int, int] = {}  # partition -> the next offset to read (handled before)
        self._durable: dict[int, int] = {}  # the same, as of the last FLUSH the broker has
        self._committed: dict[int, int] = {}
        self._assignments: queue.SimpleQueue[tuple[int, list[int]]] = queue.SimpleQueue()
        # Filled by the reader without waiting for the event loop, which only has to take them:
        # a reader waiting for the loop to accept each batch left messages in librdkafka's queue
        # while every other stage's batch was handled (most of a hop's latency under load).
        self._batches: asyncio.Queue[Queued] = asyncio.Queue()
        self._room = threading.Semaphore(QUEUED_BATCHES)  # released as batches are taken
        self._handling = asyncio.Lock()
        self._waiting: asyncio.Future[tuple[list[Record], Settle]] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def install(self) -> None:
        """Subscribe faust's group to the topic (faust never fetches it) and follow its
        assignments; run the reader, the handling and the commits with the App."""
        faust_internals.never_fetch(self._topic)
        self._app.topics.add(self._app.topic(self._topic, internal=False))
        self._app.on_partitions_revoked.connect(self._on_revoked)
        self._app.on_partitions_assigned.connect(self._on_assigned)
        self._app.on_stopping.connect(self._on_stopping)
        self._app.task(self._run)

    def reads(self, partition: int) -> bool:
        """Whether this worker reads ``partition`` of the topic now."""
        return partition in self._assigned

    # -- the event loop's side

    async def _run(self) -> None:
        """Handle batches as they come; commit what is done every ``commit_interval_s``."""
        loop = asyncio.get_running_loop()
        name = f"intake-{self._topic}"
        self._thread = threading.Thread(target=self._read, args=(loop,), name=name, daemon=True)
        self._thread.start()
        committing = asyncio.ensure_future(self._commit_periodically())
        try:
            while True:
                # One batch at a time: with one queued, the reader holds the next (a backlog
                # reads as batches of up to MAX_BATCH_BYTES anyway).
                epoch, batch = await self._batches.get()
                self._room.release()
                await faust_internals.flowing(self._app)
                async with self._handling:
                    if epoch == self._epoch:
                        await self._handle_batch(batch)
                garbage_collection.between_batches()
        finally:
            committing.cancel()

    async def _handle_batch(self, messages: list[Message]) -> None:
        self._waiting = handling = asyncio.ensure_future(self._handle(messages))
        try:
            records, settle = await handling
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the intake itself is stopped
            # dropped by _let_go while it waited: nothing of it was handled, nothing is done
            logger.info("%s: a batch waiting to be handled dropped; read again", self._topic)
            return
        except Exception:  # the rules refuse bad input; anything else is a bug: restart
            logger.exception("handling %s failed; exiting (code %d)", self._topic, EXIT_STALLED)
            logging.shutdown()
            os._exit(EXIT_STALLED)
        finally:
            self._waiting = None
        self._unflushed = self._writes_behind and bool(messages)
        await self._sending.send(
            records, lambda delivered: self._done_with(messages, settle, delivered)
        )

    def _done_with(self, messages: list[Message], settle: Settle, delivered: Delivered) -> None:
        """The broker has what ``messages`` became: they are done (``_let_go`` waits for this
        before it commits and forgets a partition, so none of theirs is given up yet)."""
        settle(delivered)
        for message in messages:  # a partition's messages come in offset order
            self._done[message.partition()] = message.offset() + 1
        for partition in {message.partition() for message in messages}:
            handled = self._done[partition] - 1
            self._handled.mark_offset(TP(self._topic, partition), self._generation, handled)
        if not self._writes_behind or messages is FLUSH:
            # every batch before this one is on the broker, and so is every write they made
            self._durable = dict(self._done)

    async def _commit_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._commit_interval_s)
            await self._flush()
            await self._commit(set(self._assigned))

    async def _flush(self) -> None:
        """Have the stage write out what it holds (``FLUSH``), if it handled anything since it
        last did; return once the broker has it, and the batches before it may be committed."""
        if self._unflushed:
            async with self._handling:
                await self._handle_batch(FLUSH)
            await self._sending.drain()

    async def _commit(self, partitions: set[int]) -> None:
        offsets = {
            TP(self._topic, p): self._durable[p]
            for p in partitions
            if p in self._durable and self._durable[p] != self._committed.get(p)
        }
        if not offsets:
            return
        try:
            committed = await faust_internals.commit_offsets(self._app.consumer, offsets)
        except Exception as exc:  # a rebalance under way: the revocation commits them
            logger.info("input offsets not committed now (%r)", exc)
            return
        if committed:
            for tp, offset in offsets.items():
                self._committed[tp.partition] = offset

    def _assign(self, partitions: set[int]) -> None:
        self._epoch += 1
        self._assigned = partitions
        self._assignments.put((self._epoch, sorted(partitions)))

    async def _on_assigned(self, sender: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        self._generation = self._app.consumer_generation_id
        self._assign({tp.partition for tp in assigned if tp.topic == self._topic})

    async def _on_revoked(self, sender: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == self._topic} & self._assigned
        if gone:
            await self._let_go(gone)

    async def _on_stopping(self, sender: WorkerApp, **kwargs: Any) -> None:
        await self._let_go(set(self._assigned))
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)

    async def _let_go(self, partitions: set[int]) -> None:
        """Stop reading ``partitions``, finish the batch in flight, commit them, forget them.

        A batch still waiting to be handled (for an unreachable schema registry, say) is
        dropped like the queued ones rather than awaited: a worker stopping or giving up
        partitions is not held by it. The partitions kept are read again from their committed
        offsets (``_assign``), so the dropped batch's messages are read again, here or by the
        partitions' next owner.
        """
        self._assign(self._assigned - partitions)  # their queued batches are dropped
        if self._waiting is not None:
            self._waiting.cancel()
        async with self._handling:  # the batch being handled, if any, is handed over
            await self._sending.drain()  # and every batch handed over is delivered
            if self._writes_behind:  # and what they wrote (their settling too) written out
                await self._handle_batch(FLUSH)
                await self._sending.drain()
            await self._commit(partitions)
        for partition in partitions:
            self._done.pop(partition, None)
            self._durable.pop(partition, None)
            self._committed.pop(partition, None)

    # -- the reader thread

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        consumer = Consumer(self._config)
        epoch, assigned = 0, []
        try:
            while not self._stopping.is_set():
                while not self._assignments.empty():
                    epoch, assigned = self._assignments.get()
                    consumer.assign(
                        [TopicPartition(self._topic, p, OFFSET_STORED) for p in assigned]
                    )
                if not assigned:
                    self._stopping.wait(0.05)
                    continue
                messages = []
                for message in take(consumer, self._batch_size, IDLE_WAIT_S):
                    if message.error() is None:
                        messages.append(message)
                    else:
                        logger.warning("%s: %s", self._topic, message.error())
                for chunk in chunks(messages, MAX_BATCH_BYTES):
                    # waits while QUEUED_BATCHES are waiting: back-pressure
                    while not self._room.acquire(timeout=IDLE_WAIT_S):
                        if self._stopping.is_set():
                            return
                    loop.call_soon_threadsafe(self._batches.put_nowait, (epoch, chunk))
        except Exception:  # the worker cannot read its input: have it restarted
            logger.exception("%s reader failed; exiting (code %d)", self._topic, EXIT_STALLED)
            logging.shutdown()
            os._exit(EXIT_STALLED)
        finally:
            consumer.close()


def take(consumer: Consumer, limit: int, wait_s: float) -> list[Message]:
    """What librdkafka has fetched, up to ``limit`` messages and events, as soon as there is
    one (waiting at most ``wait_s`` for it). It prefetches continuously, so under load that is a
    full batch; ``consume(limit, wait_s)`` would instead wait out ``wait_s`` whenever fewer than
    ``limit`` are left: every batch of a quiet input, the last of every restore."""
    taken = consumer.consume(limit, 0)
    if not taken:
        taken = consumer.consume(1, wait_s)
        if taken:
            taken += consumer.consume(limit - 1, 0)
    return taken


def chunks(messages: list[Message], limit: int) -> Iterator[list[Message]]:
    """``messages`` in order, in runs of at most ``limit`` value bytes (a larger message
    alone)."""
    chunk: list[Message] = []
    size = 0
    for message in messages:
        nbytes = len(message.value() or b"")
        if chunk and size + nbytes > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(message)
        size += nbytes
    if chunk:
        yield chunk
