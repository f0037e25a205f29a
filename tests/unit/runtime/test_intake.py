"""What the intakes may commit: the handled watermark of the current generation, and for a
stage with a table what its last flush covers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.types import TP

from streams.runtime import intake as intake_module
from streams.runtime.delivery import Outbox, Record
from streams.runtime.intake import FLUSH, HandledOffsets, Intake, Settle, chunks, take

TOPIC = TP("identify-events-by-anonymous", 0)


def test_a_late_message_of_an_older_generation_does_not_reset_the_watermark():
    handled = HandledOffsets()
    handled.mark_offset(TOPIC, 6, 40)
    handled.mark_offset(TOPIC, 5, 90)
    handled.mark_offset(TOPIC, 6, 30)
    assert handled.limit(TOPIC, 6) == 41
    assert handled.limit(TOPIC, 5) is None
    assert handled.limit(TP("other", 0), 6) is None


class FakeMessage:
    def __init__(self, value: bytes | None) -> None:
        self._value = value

    def value(self) -> bytes | None:
        return self._value


def test_a_backlog_of_envelopes_is_handled_in_batches_of_bounded_bytes():
    """A replay fetches thousands of envelopes at once; a batch holds at most ``limit`` bytes of
    them, in order, and a message larger than that goes alone."""
    sizes = [300, 300, 500, 1200, None, 100, 900]
    messages = [FakeMessage(None if n is None else b"x" * n) for n in sizes]
    got = list(chunks(messages, 1000))
    assert [[len(m.value() or b"") for m in chunk] for chunk in got] == [
        [300, 300],
        [500],
        [1200],
        [0, 100, 900],
    ]
    assert [m for chunk in got for m in chunk] == messages
    assert list(chunks([], 1000)) == []


class Fetched:
    """librdkafka's consume: up to ``n`` of what it has fetched, the first one waited for."""

    def __init__(self, ready: list[str], arriving: list[str]) -> None:
        self.ready, self.arriving = ready, arriving  # arriving: only after a wait
        self.calls: list[tuple[int, float]] = []

    def consume(self, n: int, timeout: float) -> list[str]:
        self.calls.append((n, timeout))
        if not self.ready and timeout > 0:
            self.ready, self.arriving = self.arriving, []
        taken, self.ready = self.ready[:n], self.ready[n:]
        return taken


def test_take_returns_what_is_fetched_without_waiting_for_a_full_batch():
    fetched = Fetched(ready=["a", "b", "c"], arriving=[])
    assert take(fetched, 10, 0.5) == ["a", "b", "c"]
    assert fetched.calls == [(10, 0)]


def test_take_waits_for_the_first_message_only():
    fetched = Fetched(ready=[], arriving=["a", "b"])
    assert take(fetched, 10, 0.5) == ["a", "b"]
    assert fetched.calls == [(10, 0), (1, 0.5), (9, 0)]
    assert take(Fetched(ready=[], arriving=[]), 10, 0.5) == []


def test_take_takes_at_most_the_limit():
    fetched = Fetched(ready=list("abcdef"), arriving=[])
    assert take(fetched, 4, 0.5) == list("abcd")
    assert take(fetched, 4, 0.5) == list("ef")


class FakeApp:
    class conf:  # faust's App.conf
        id = "group"


def _waiting_intake() -> tuple[Intake, asyncio.Event]:
    """An intake whose stage waits forever before handling (a registry that never answers)."""
    waiting = asyncio.Event()

    async def handle(messages: list[Any]) -> tuple[list[Record], Settle]:
        waiting.set()
        await asyncio.Event().wait()
        raise AssertionError("never handled")

    app: Any = FakeApp()
    intake = Intake(app, "input", {}, 100, 500, 1.0, handle, Outbox({}, 1), HandledOffsets())
    intake._assign({0, 1})
    return intake, waiting


def test_a_batch_still_waiting_to_be_handled_does_not_hold_its_partitions():
    """Giving partitions up (a rebalance, a stop) drops such a batch instead of awaiting it:
    nothing of it was handled, so nothing is marked done, and it is read again."""

    async def scenario() -> None:
        intake, waiting = _waiting_intake()

        async def run_one() -> None:  # as Intake._run does
            async with intake._handling:
                await intake._handle_batch([FakeMessage(b"x")])

        batch = asyncio.ensure_future(run_one())
        await waiting.wait()
        await asyncio.wait_for(intake._let_go({0}), timeout=5)
        await asyncio.wait_for(batch, timeout=5)
        assert intake._done == {}
        assert intake._assigned == {1}

    asyncio.run(scenario())


def test_an_intake_stopped_while_a_batch_waits_is_cancelled_itself():
    async def scenario() -> None:
        intake, waiting = _waiting_intake()
        batch = asyncio.ensure_future(intake._handle_batch([FakeMessage(b"x")]))
        await waiting.wait()
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch

    asyncio.run(scenario())


class PlacedMessage(FakeMessage):
    def __init__(self, partition: int, offset: int) -> None:
        super().__init__(b"x")
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class FakeConsumer:
    def __init__(self) -> None:
        self.committed: list[dict[TP, int]] = []


def _writing_intake(writes_behind: bool) -> tuple[Intake, list[list[Any]]]:
    """An intake whose stage handles every batch at once; ``handled`` lists the batches."""
    handled: list[list[Any]] = []

    async def handle(messages: list[Any]) -> tuple[list[Record], Settle]:
        handled.append(messages)
        return [], lambda delivered: None

    app: Any = FakeApp()
    app.consumer = FakeConsumer()
    intake = Intake(
        app, "input", {}, 100, 500, 1.0, handle, Outbox({}, 1), HandledOffsets(), writes_behind
    )
    intake._assign({0, 1})
    return intake, handled


@pytest.fixture
def commits(monkeypatch) -> list[dict[TP, int]]:
    """What the intakes commit, in order (instead of committing it through faust)."""
    made: list[dict[TP, int]] = []

    async def commit_offsets(consumer: Any, offsets: dict[TP, int]) -> bool:
        made.append(dict(offsets))
        return True

    monkeypatch.setattr(intake_module.faust_internals, "commit_offsets", commit_offsets)
    return made


def test_a_stage_with_a_table_commits_only_what_a_flush_on_the_broker_covers(commits):
    """Its table holds writes until a FLUSH batch writes them out: input handled before that
    batch is delivered may have changed state the changelog does not have yet."""

    async def scenario() -> None:
        intake, handled = _writing_intake(writes_behind=True)
        await intake._handle_batch([PlacedMessage(0, 0), PlacedMessage(0, 1)])
        await intake._sending.drain()
        await intake._commit({0, 1})
        assert commits == []  # handled and delivered, but its writes are held
        await intake._flush()
        assert handled[-1] is FLUSH
        await intake._commit({0, 1})
        assert commits == [{TP("input", 0): 2}]
        await intake._flush()  # nothing handled since: no FLUSH
        assert len(handled) == 2
        await intake._handle_batch([PlacedMessage(1, 7)])
        await intake._let_go({1})  # giving partitions up flushes before it commits
        assert handled[-1] is FLUSH
        assert commits[-1] == {TP("input", 1): 8}

    asyncio.run(scenario())


def test_a_stage_without_a_table_commits_what_was_delivered(commits):
    async def scenario() -> None:
        intake, handled = _writing_intake(writes_behind=False)
        await intake._handle_batch([PlacedMessage(0, 0), PlacedMessage(1, 4)])
        await intake._sending.drain()
        await intake._flush()
        await intake._let_go({0, 1})
        assert all(batch is not FLUSH for batch in handled)
        assert commits == [{TP("input", 0): 1, TP("input", 1): 5}]

    asyncio.run(scenario())
