"""What the intakes may commit: the handled watermark of the current generation."""

from __future__ import annotations

from faust.types import TP

from streams.runtime.intake import HandledOffsets

TOPIC = TP("identify-events-by-anonymous", 0)


def test_a_late_message_of_an_older_generation_does_not_reset_the_watermark():
    handled = HandledOffsets()
    handled.mark_offset(TOPIC, 6, 40)
    handled.mark_offset(TOPIC, 5, 90)
    handled.mark_offset(TOPIC, 6, 30)
    assert handled.limit(TOPIC, 6) == 41
    assert handled.limit(TOPIC, 5) is None
    assert handled.limit(TP("other", 0), 6) is None
