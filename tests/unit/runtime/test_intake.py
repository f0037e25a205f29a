"""What the intakes may commit: the handled watermark of the current generation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.types import TP

from streams.runtime.delivery import Outbox, Record
from streams.runtime.intake import HandledOffsets, Intake, Settle, chunks

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
