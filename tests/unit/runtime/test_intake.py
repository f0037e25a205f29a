"""What the intakes may commit: the handled watermark of the current generation."""

from __future__ import annotations

from faust.types import TP

from streams.runtime.intake import HandledOffsets, chunks

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
