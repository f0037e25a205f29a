"""The outbox against a stand-in for librdkafka's producer: what is produced again, and when."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from streams.runtime import delivery
from streams.runtime.delivery import Outbox, Record


class FakeMessage:
    def __init__(self, topic: str, key: bytes | None, partition: int, offset: int) -> None:
        self._topic, self._key, self._partition, self._offset = topic, key, partition, offset

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class FakeProducer:
    """Delivers everything at the next poll, except the first attempt of each key in ``fail``."""

    def __init__(self, config: dict[str, Any], fail: set[bytes]) -> None:
        self.produced: list[tuple[str, bytes | None]] = []
        self._fail = set(fail)
        self._reports: list[tuple[Any, Any]] = []
        self._lock = threading.Lock()
        self._offsets: dict[tuple[str, int], int] = {}

    def produce(self, topic: str, value: Any, key: Any, partition: int, on_delivery: Any) -> None:
        with self._lock:
            self.produced.append((topic, key))
            if key in self._fail:
                self._fail.discard(key)
                message = FakeMessage(topic, key, partition, -1)
                self._reports.append((on_delivery, ("failed", message)))
                return
            offset = self._offsets.get((topic, partition), -1) + 1
            self._offsets[(topic, partition)] = offset
            message = FakeMessage(topic, key, partition, offset)
            self._reports.append((on_delivery, (None, message)))

    def poll(self, timeout: float) -> int:
        with self._lock:
            reports, self._reports = self._reports, []
        for callback, args in reports:
            callback(*args)
        if not reports:
            threading.Event().wait(min(timeout, 0.01))
        return len(reports)

    def flush(self, timeout: float) -> int:
        self.poll(0)
        return 0


@pytest.fixture
def outbox(monkeypatch):
    made: list[FakeProducer] = []

    def producer(config: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(config, fail={b"j"}))
        return made[-1]

    monkeypatch.setattr(delivery, "Producer", producer)
    monkeypatch.setattr(delivery, "RETRY_BACKOFF_S", 0.0)
    box = Outbox({}, linger_ms=0)
    yield box, made
    box.close()


def test_a_failed_record_goes_again_with_every_record_of_its_topic_in_order(outbox):
    """A later write of a key must stay the last one: the changelog is compacted by key."""
    box, made = outbox
    records = [
        Record("changelog", b"k", b"old", 0),
        Record("changelog", b"j", b"x", 0),
        Record("changelog", b"k", b"new", 0),
        Record("profiles", b"p", b"v", 1),
    ]
    offsets = asyncio.run(box.deliver(records))
    produced = made[0].produced
    assert produced[:4] == [(r.topic, r.key) for r in records]
    assert produced[4:] == [("changelog", b"k"), ("changelog", b"j"), ("changelog", b"k")]
    assert offsets == {("changelog", 0): 4, ("profiles", 1): 0}


def test_nothing_is_produced_again_when_everything_arrives(outbox):
    box, made = outbox
    asyncio.run(box.deliver([Record("profiles", b"p", b"v", 0)]))
    assert made[0].produced == [("profiles", b"p")]


def test_deliveries_settle_in_the_order_they_started(outbox):
    """A stage's batches are marked handled in order, whatever the broker acknowledges first."""
    box, _ = outbox
    settled: list[str] = []

    async def scenario() -> None:
        sending = delivery.InOrder(box, depth=4)
        # the first batch has a record the broker refuses once: it settles after a retry
        await sending.send([Record("changelog", b"j", b"x", 0)], lambda d: settled.append("1"))
        await sending.send([Record("profiles", b"p", b"v", 1)], lambda d: settled.append("2"))
        await sending.send([], lambda d: settled.append("3"))
        await sending.drain()

    asyncio.run(scenario())
    assert settled == ["1", "2", "3"]


def test_a_batch_sent_while_the_stage_drains_settles_after_the_batches_before_it(outbox):
    """The intake drains its stage's deliveries before each commit while the stage sends its
    next batch. That batch must still be marked handled after the earlier ones (here a flush
    that needs a retry): before, the flush's offsets would include it, and the commit would pass
    a batch whose table writes that flush does not hold (a crash then lost them for good)."""
    box, _ = outbox
    settled: list[str] = []

    async def scenario() -> None:
        sending = delivery.InOrder(box, depth=4)
        await sending.send([Record("changelog", b"j", b"x", 0)], lambda d: settled.append("flush"))
        draining = asyncio.ensure_future(sending.drain())
        await asyncio.sleep(0)  # the drain takes the flush's delivery out of the queue
        await sending.send([Record("profiles", b"p", b"v", 1)], lambda d: settled.append("batch"))
        await draining
        await sending.drain()

    asyncio.run(scenario())
    assert settled == ["flush", "batch"]


def test_a_later_delivery_produces_again_what_an_earlier_one_had_to(outbox):
    """A key written by two batches keeps the later batch's value as its last record."""
    box, made = outbox

    async def scenario() -> list[delivery.Delivered]:
        first = await box.start([Record("changelog", b"j", b"old", 0)])
        second = await box.start(
            [Record("changelog", b"j", b"new", 0), Record("profiles", b"p", b"v", 1)], first
        )
        return [await first, await second]

    first, second = asyncio.run(scenario())
    produced = made[0].produced
    # j (refused), j, p, then again: the first call's j, then the second call's changelog j
    assert produced == [
        ("changelog", b"j"),
        ("changelog", b"j"),
        ("profiles", b"p"),
        ("changelog", b"j"),
        ("changelog", b"j"),
    ]
    assert first.produced_again == second.produced_again == {"changelog"}
    assert second.offsets == {("changelog", 0): 2, ("profiles", 1): 0}


def test_a_stage_goes_on_while_at_most_depth_batches_are_unacknowledged(outbox):
    box, made = outbox

    async def scenario() -> int:
        sending = delivery.InOrder(box, depth=2)
        for n in range(5):
            await sending.send([Record("profiles", b"k%d" % n, b"v", 0)], lambda d: None)
            assert len(sending._in_flight) <= 2
        await sending.drain()
        return len(sending._in_flight)

    assert asyncio.run(scenario()) == 0
    assert len(made[0].produced) == 5
