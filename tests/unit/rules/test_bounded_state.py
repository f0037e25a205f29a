"""A profile's state is bounded by what it shows, whatever the number of events it has seen.

Increments beyond each attribute's newest ``profile.WINDOW`` settle into an exact sum; removed
list items beyond the newest ``WINDOW`` tombstones are forgotten; redeliveries are told by input
position. The values stay those of the full history, in any arrival order, split and crash
history.
"""

import json
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.rules import profile
from streams.rules.events import parse_identify
from tests.factories import identify
from tests.simulation import simulate
from topology.avro import IDENTIFY_EVENT

PID = "p-1"
W = profile.WINDOW


def event(ts, **fields):
    record = {**identify(ts=ts, user="u", message_id=f"m{ts:07d}"), **fields}
    return parse_identify(IDENTIFY_EVENT.decode(IDENTIFY_EVENT.encode(record))).event


def fold_all(events, state=None):
    for e in events:
        state = profile.fold(state, e, PID)
    return state


N = profile.kinded("custom.n", "number")
CART = profile.kinded("custom.cart", "list")


def size(state) -> int:
    return len(json.dumps(state))


deltas = st.lists(
    st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False)),
    min_size=W + 1,
    max_size=4 * W,
)


@settings(max_examples=60, deadline=None)
@given(deltas, st.randoms(use_true_random=False), st.integers(1, 4))
def test_settled_increments_sum_exactly_in_any_order_and_split(values, rnd, parts):
    events = [event(ts, increment={"n": d}) for ts, d in enumerate(values, start=1)]
    exact = all(isinstance(v, int) for v in values)
    # decimals: the exactly rounded sum of all of them, as math.fsum gives it
    expected = ["number", sum(values) if exact else math.fsum(values)]
    shuffled = list(events)
    rnd.shuffle(shuffled)
    whole = fold_all(shuffled)
    assert len(whole["incr"][N]) <= W
    assert profile.current_values(whole)[N] == expected
    # the same events split over disjoint parts (own events, device slices), joined to render
    buckets = [[] for _ in range(parts)]
    for e in shuffled:
        buckets[rnd.randrange(parts)].append(e)
    partials = [fold_all(b) for b in buckets if b]
    joined = partials[0]
    for p in partials[1:]:
        joined = profile.join(joined, p, disjoint=True)
    assert profile.current_values(joined)[N] == expected


def nearly_sorted(events, rnd, span=W // 2):
    """Arrival order off event time by fewer than ``span`` events: the window's promise."""
    keyed = sorted(
        ((i + rnd.uniform(0, span), e) for i, e in enumerate(events)), key=lambda x: x[0]
    )
    return [e for _, e in keyed]


def test_a_set_within_the_window_still_decides_which_increments_count():
    events = [event(ts, increment={"n": 1}) for ts in range(1, 3 * W)]
    setter = event(3 * W - W // 2, set={"custom": {"n": 100}})  # behind fewer than W increments
    for order in ([*events, setter], [setter, *events]):
        got = profile.current_values(fold_all(order))[N]
        after = sum(1 for e in events if e.timestamp > setter.timestamp)
        assert got == ["number", 100 + after]


def test_a_set_after_everything_drops_the_settled_sum():
    events = [event(ts, increment={"n": 1}) for ts in range(1, 3 * W)]
    state = fold_all([*events, event(10 * W, set={"custom": {"n": 7}})])
    assert profile.current_values(state)[N] == ["number", 7]
    assert "base" not in state


def test_state_does_not_grow_with_the_events_a_profile_has_seen():
    def hot(n):
        return fold_all(
            event(ts, set={"city": "Oslo"}, increment={"visits": 1}) for ts in range(1, n + 1)
        )

    small, large = hot(2 * W), hot(20 * W)
    assert size(large) <= 1.1 * size(small)  # only the digits of the sum and the stamps grow
    assert profile.current_values(large)[profile.kinded("custom.visits", "number")] == [
        "number",
        20 * W,
    ]


def test_removed_list_items_are_forgotten_beyond_the_window():
    events = []
    for i in range(3 * W):
        events.append(event(2 * i + 1, append={"cart": [f"sku-{i}"]}))
        events.append(event(2 * i + 2, remove={"cart": [f"sku-{i}"]}))
    events.append(event(10 * W, append={"cart": ["kept"]}))
    state = fold_all(nearly_sorted(events, random.Random(3)))
    assert profile.current_values(state)[CART] == ["list", ["kept"]]
    assert len(state["rems"][CART]) <= 2 * W
    assert len(state["adds"][CART]) <= 2 * W + 1


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3), st.sampled_from([0.0, 0.2]))
def test_a_hot_profile_through_the_stages_counts_every_event_once(seed, partitions, crash_rate):
    """Redelivered commands (crashes) are told by position, also for settled increments."""
    n = 3 * W
    records = []
    for i in range(n):
        anon = "dev" if i % 3 == 0 else None  # some through the device, most as the user
        rec = identify(ts=i + 1, user="u" if anon is None or i == 0 else None, anon=anon)
        records.append((None, {**rec, "increment": {"n": 1}}))
    random.Random(seed).shuffle(records)
    out = simulate(records, partitions=partitions, seed=seed, crash_rate=crash_rate)
    (user_profile,) = [p for p in out.profiles.values() if p["userId"] == "u"]
    assert user_profile["attributes"]["custom"]["n"] == n
