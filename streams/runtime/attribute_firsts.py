"""Every worker reads the whole attribute-firsts topic, for as long as it runs.

The records are tiny and few (per routing partition, the earliest value of each custom attribute
and kind: see ``streams.rules.attribute_types``), and every worker must know them all to decide
custom attribute types the same way. So this is not a consumer group: a librdkafka consumer on a
thread of its own is assigned every partition from the beginning and hands each record to the
worker's ``AttributeTypes`` on the event loop, where the stages read it. Nothing is committed;
a restarted worker reads the topic again from the start (it is compacted: one record per key).

``ready`` is set once everything the topic held at start-up has been read, so that a worker
never renders a profile with less than what was decided before it started; ``catch_up`` clears
it again until everything the topic holds by then has been read (after a rebalance: a partition
that moved here was rendered by another worker with what that worker had read, and every
record it took from the stream is on this topic too). ``read_to_end`` waits for the same
without holding the stages (a worker that says it has settled). ``on_change`` hears of every
decision that a record changed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from streams.rules.attribute_types import AttributeTypes
from streams.runtime.watchdog import EXIT_STALLED

logger = logging.getLogger(__name__)

OnChange = Callable[[set[tuple[str, str]]], None]
# Answers of a broker restarting or moving a partition's leadership: asked again, for as long as
# ENDS_PATIENCE_S (then the worker exits to be restarted, as for any other failure here).
TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._UNKNOWN_PARTITION,  # the client's metadata, while the broker comes back
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}
ENDS_PATIENCE_S = 60.0
ENDS_RETRY_S = 0.5


class AttributeFirsts:
    """The attribute-firsts topic, read in full into ``types`` (see the module docstring)."""

    def __init__(
        self,
        kafka_config: dict[str, str],
        topic: str,
        types: AttributeTypes,
        on_change: OnChange,
    ) -> None:
        self._config = {
            **kafka_config,
            "group.id": f"attribute-firsts-reader-{uuid.uuid4().hex}",  # never joins or commits
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # A new decision still reaches the stages at once: the broker answers a waiting
            # fetch when a record arrives; the wait is how often an idle topic is asked again.
            "fetch.wait.max.ms": 500,
        }
        self._topic = topic
        self._types = types
        self._on_change = on_change
        self._stopping = threading.Event()
        self._wanted = 0  # ends asked for so far; the reader's ends answer one of them
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []  # read_to_end calls
        self._thread: threading.Thread | None = None
        self.ready = asyncio.Event()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(loop,), name="attribute-firsts", daemon=True
        )
        self._thread.start()

    def catch_up(self) -> None:
        """Hold the stages until what the topic holds now has been read (call on the loop)."""
        self.ready.clear()
        self._wanted += 1

    async def read_to_end(self) -> None:
        """Until what the topic holds now has been read and handed to ``types``."""
        self._wanted += 1
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((self._wanted, done))
        await done

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def apply(self, records: list[tuple[str, Any]]) -> None:
        """Take records (on the event loop): the stages see them from the next message on."""
        changed: set[tuple[str, str]] = set()
        for key, value in records:
            changed |= self._types.add(key, value)
        if changed:
            self._on_change(changed)

    def _caught_up(self, answered: int) -> None:
        if answered == self._wanted and not self.ready.is_set():  # no catch_up asked since
            logger.info("attribute-firsts read to the end (%d records)", len(self._types.firsts))
            self.ready.set()
        still = []
        for asked, done in self._waiting:
            if asked > answered:
                still.append((asked, done))
            elif not done.done():
                done.set_result(None)
        self._waiting = still

    def _ends(self, consumer: Consumer, tps: list[TopicPartition]) -> dict[int, int]:
        """Where each partition ends now. During a broker's restart the answer is a transient
        error for a few seconds (``TRANSIENT``): asked again rather than exiting the worker."""
        deadline = time.monotonic() + ENDS_PATIENCE_S
        while True:
            try:
                return {
                    tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in tps
                }
            except KafkaException as exc:
                error = exc.args[0]
                transient = error.retriable() or error.code() in TRANSIENT
                if not transient or time.monotonic() > deadline or self._stopping.is_set():
                    raise
                logger.info("attribute-firsts: end offsets not known yet (%s); asking again", error)
                self._stopping.wait(ENDS_RETRY_S)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        consumer = Consumer(self._config)
        try:
            partitions = consumer.list_topics(self._topic, timeout=30).topics[self._topic]
            tps = [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in partitions.partitions]
            answered = self._wanted
            ends = self._ends(consumer, tps)
            consumer.assign(tps)
            read = dict.fromkeys(ends, 0)
            while not self._stopping.is_set():
                if answered != self._wanted:
                    answered = self._wanted
                    ends = self._ends(consumer, tps)
                messages = consumer.consume(num_messages=1000, timeout=0.2)
                records = []
                for message in messages:
                    if message.error() is not None:
                        logger.warning("attribute-firsts: %s", message.error())
                        continue
                    read[message.partition()] = message.offset() + 1
                    if message.value() is not None:
                        records.append((message.key().decode(), orjson.loads(message.value())))
                if records:
                    loop.call_soon_threadsafe(self.apply, records)
                if all(read[p] >= end for p, end in ends.items()):
                    loop.call_soon_threadsafe(self._caught_up, answered)
        except Exception:  # the worker cannot decide types without it: have it restarted
            logger.exception("attribute-firsts reader failed; exiting (code %d)", EXIT_STALLED)
            logging.shutdown()
            os._exit(EXIT_STALLED)
        finally:
            consumer.close()
