"""The commit guard: faust's commit point, capped at what the stages handled in this generation."""

from __future__ import annotations

from dataclasses import dataclass

import faust
import pytest
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from streams.runtime import commit_guard, faust_internals

TOPIC = TP("identify-events-by-anonymous", 0)


@dataclass
class FakeMessage:
    """The fields of a faust Message the guard reads."""

    tp: TP
    offset: int
    generation_id: int


def consumer(name: str, guarded: bool = True, generation: int = 5) -> faust.App:
    """An unstarted faust consumer (nothing connects) with its commit bookkeeping to fill."""
    app = faust.App(name, broker="kafka://127.0.0.1:1", autodiscover=False)
    app.consumer_generation_id = generation
    if guarded:
        commit_guard.guard(app)
    return app.consumer


def handle(consumer, offsets, generation: int = 5) -> None:
    handled = commit_guard.guard(consumer.app)
    for offset in offsets:
        handled.mark(FakeMessage(TOPIC, offset, generation))


def acked(consumer, offsets, committed: int | None, gaps=()) -> None:
    """faust's commit bookkeeping as its acks and commits leave it (no public way to set it)."""
    consumer._acked[TOPIC] = list(offsets)
    consumer._acked_index[TOPIC] = set(offsets)
    for begin, end in gaps:
        consumer._gap[TOPIC].addi(begin, end)
    committed_at(consumer, committed)


def committed_at(consumer, offset: int | None) -> None:
    consumer._committed_offset[TOPIC] = offset


def commit(consumer) -> int | None:
    """The commit point faust's commit asks for ``TOPIC`` (the guard's, once installed)."""
    return consumer._new_offset(TOPIC)


def still_acked(consumer) -> list[int]:
    return faust_internals.acked_bookkeeping(consumer, TOPIC).acked


def test_single_unhandled_offset_at_the_head_is_not_committed_over():
    # faust-streaming #606: committed 2585, 2585 still in flight, 2586..2589 acked
    c = consumer("guard-606")
    acked(c, range(2586, 2590), committed=2585)
    handle(c, range(2570, 2585))  # in order, up to the one before the message in flight
    assert commit(c) == 2585  # the committed offset again: faust skips the commit
    assert still_acked(c) == [2586, 2587, 2588, 2589]


def test_faust_alone_commits_over_it():
    """The reason for the guard, kept as a test so a faust upgrade that fixes it is noticed."""
    c = consumer("unguarded-606", guarded=False)
    acked(c, range(2586, 2590), committed=2585)
    assert faust_internals.faust_commit_point(c, TOPIC) == 2590


def test_skipped_stale_messages_do_not_carry_the_commit_past_the_handled_ones():
    # acked 100..150 by faust's skip of prefetched messages; handled again up to 110 so far
    c = consumer("guard-stale")
    acked(c, range(100, 151), committed=100)
    handle(c, range(100, 111))
    assert commit(c) == 111
    assert still_acked(c) == list(range(111, 151))
    assert faust_internals.acked_bookkeeping(c, TOPIC).index == set(range(111, 151))
    handle(c, range(111, 151))
    committed_at(c, 111)
    assert commit(c) == 151
    assert still_acked(c) == []


def test_nothing_is_committed_before_the_generation_handled_anything():
    c = consumer("guard-new-generation", generation=6)
    acked(c, range(100, 120), committed=100)
    handle(c, range(100, 120), generation=5)
    assert commit(c) is None
    assert still_acked(c) == list(range(100, 120))  # kept for when it has


def test_a_late_message_of_an_older_generation_does_not_reset_the_watermark():
    handled = commit_guard.HandledOffsets()
    handled.mark(FakeMessage(TOPIC, 40, 6))
    handled.mark(FakeMessage(TOPIC, 90, 5))
    handled.mark(FakeMessage(TOPIC, 30, 6))
    assert handled.limit(TOPIC, 6) == 41
    assert handled.limit(TOPIC, 5) is None
    assert handled.limit(TP("other", 0), 6) is None


def test_gaps_below_the_cap_are_committed_and_above_it_kept():
    # offsets 103..104 are transaction markers (never delivered): faust records them as a gap
    c = consumer("guard-gaps")
    acked(c, [100, 101, 102, 105, 106, 107], committed=100, gaps=[(103, 105)])
    handle(c, [100, 101, 102, 105])
    assert commit(c) == 106
    assert still_acked(c) == [106, 107]


@pytest.mark.parametrize(("proposed", "limit", "expected"), [(None, 5, None), (9, None, None)])
def test_capped_without_a_proposal_or_a_limit(proposed, limit, expected):
    assert commit_guard.capped(proposed, limit) == expected


@given(
    committed=st.integers(0, 50),
    acked_offsets=st.sets(st.integers(0, 120), min_size=1),
    handled_up_to=st.integers(-1, 120),
)
def test_never_above_faust_nor_above_what_was_handled(committed, acked_offsets, handled_up_to):
    offsets = sorted(o for o in acked_offsets if o >= committed) or [committed]
    plain = consumer("plain-property", guarded=False)
    acked(plain, offsets, committed)
    proposed = commit(plain)

    c = consumer("guard-property")
    commit_guard._handled[c.app] = commit_guard.HandledOffsets()  # fresh watermark per example
    acked(c, offsets, committed)
    handle(c, range(committed, handled_up_to + 1))
    got = commit(c)

    if proposed is None or handled_up_to < committed:
        assert got is None
    else:
        assert got == min(proposed, handled_up_to + 1)
        # what stays in the bookkeeping is exactly the acked offsets not committed
        assert still_acked(c) == [o for o in offsets if o >= got]
