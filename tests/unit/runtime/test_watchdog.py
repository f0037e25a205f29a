"""The stall rule: waiting input and no progress for the timeout, outside rebalances."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.runtime.watchdog import Progress, StallWatch

TIMEOUT = 60.0


def test_waiting_without_progress_for_the_timeout_is_a_stall():
    watch = StallWatch(TIMEOUT)
    assert watch.observe(0.0, {"p0": Progress(100, waiting=True)}) == []
    assert watch.observe(59.0, {"p0": Progress(100, waiting=True)}) == []
    assert watch.observe(60.0, {"p0": Progress(100, waiting=True)}) == ["p0"]


def test_progress_restarts_the_clock():
    watch = StallWatch(TIMEOUT)
    watch.observe(0.0, {"p0": Progress(100, waiting=True)})
    watch.observe(50.0, {"p0": Progress(101, waiting=True)})
    assert watch.observe(100.0, {"p0": Progress(101, waiting=True)}) == []
    assert watch.observe(110.0, {"p0": Progress(101, waiting=True)}) == ["p0"]


def test_an_idle_partition_is_not_stalled():
    watch = StallWatch(TIMEOUT)
    for now in range(0, 1000, 10):
        assert watch.observe(float(now), {"p0": Progress(100, waiting=False)}) == []


def test_caught_up_in_between_restarts_the_clock():
    watch = StallWatch(TIMEOUT)
    watch.observe(0.0, {"p0": Progress(100, waiting=True)})
    watch.observe(30.0, {"p0": Progress(100, waiting=False)})
    assert watch.observe(80.0, {"p0": Progress(100, waiting=True)}) == []


def test_a_rebalance_restarts_every_clock_and_revoked_partitions_are_forgotten():
    watch = StallWatch(TIMEOUT)
    watch.observe(0.0, {"p0": Progress(1, waiting=True), "p1": Progress(1, waiting=True)})
    watch.pause()
    assert watch.observe(70.0, {"p0": Progress(1, waiting=True)}) == []
    assert watch.observe(130.0, {"p0": Progress(1, waiting=True)}) == ["p0"]
    watch.observe(140.0, {})
    assert watch.observe(150.0, {"p0": Progress(1, waiting=True)}) == []


@given(st.lists(st.tuples(st.floats(0, 30), st.booleans(), st.booleans()), max_size=60))
def test_a_stall_is_only_reported_after_timeout_seconds_of_waiting_without_progress(steps):
    """Against a direct reading of the rule: every report is justified by the history."""
    watch = StallWatch(TIMEOUT)
    now, handled, since = 0.0, 0, None
    for gap, progressed, waiting in steps:
        now += gap
        handled += progressed
        if not waiting:
            since = None
        elif since is None or since[0] != handled:
            since = (handled, now)
        expected = ["p"] if waiting and now - since[1] >= TIMEOUT else []
        assert watch.observe(now, {"p": Progress(handled, waiting)}) == expected
