from streams.rules.deduplication import (
    DEFAULT_WINDOW_MS,
    REMEMBERED,
    forget,
    is_duplicate,
    remember,
)
from streams.rules.outcomes import BY_ANONYMOUS, BY_PROFILE, Source
from streams.rules.steps import Policies, assemble_profile, link_device, route_message
from tests.factories import identify
from tests.simulation import simulate
from topology.avro import IDENTIFY_EVENT

W = DEFAULT_WINDOW_MS


def test_a_retry_within_the_window_is_a_duplicate():
    seen = remember(None, 1_000, "m", (5, 0))
    assert is_duplicate(seen, 1_000 + W, "m", (9, 0), W)
    assert is_duplicate(seen, 1_000 - W, "m", (9, 0), W)
    assert not is_duplicate(seen, 1_000, "other", (9, 0), W)


def test_outside_the_window_the_id_counts_again():
    seen = remember(None, 1_000, "m", (5, 0))
    assert not is_duplicate(seen, 1_001 + W, "m", (9, 0), W)


def test_the_same_position_again_is_a_redelivery_not_a_duplicate():
    seen = remember(None, 1_000, "m", (5, 2))
    assert not is_duplicate(seen, 1_000, "m", (5, 2), W)
    assert is_duplicate(seen, 1_000, "m", (5, 3), W)
    assert remember(seen, 1_000, "m", (5, 3)) == seen  # the first position stays


def test_entries_are_bounded_and_keep_the_newest():
    seen = None
    for n in range(REMEMBERED + 10):
        seen = remember(seen, n, f"m{n}", (n, 0))
    assert len(seen) == REMEMBERED
    assert not is_duplicate(seen, 0, "m0", (99, 0), W)  # pushed out
    assert is_duplicate(seen, REMEMBERED + 9, f"m{REMEMBERED + 9}", (99, 0), W)


def test_an_erasure_forgets_the_entries_at_or_before_its_floor():
    seen = remember(remember(None, 1, "a", (0, 0)), 3, "c", (2, 0))
    assert [e[1] for e in forget(seen, [1, "a"])] == ["c"]
    assert forget(None, [1, "a"]) == []


def routed(record, source=(0, 0)):
    """The payload the routing step sends to the event's owner."""
    stepped = route_message(IDENTIFY_EVENT.encode(record), Source("in", *source), Policies(), 10)
    (forward,) = [e for e in stepped.emits if e.output in (BY_ANONYMOUS, BY_PROFILE)]
    assert stepped.outcome is None  # settled by the owner
    return forward.value


def test_the_device_stage_settles_its_events_and_drops_their_retries():
    first = identify(ts=5, anon="A", set={"city": "Oslo"}, message_id="req")
    retry = identify(ts=5, anon="A", set={"city": "Rome"}, message_id="req")
    applied = link_device(None, "pA", routed(first), (0, 0), Policies(), 10)
    assert applied.outcome == "applied" and applied.emits
    again = link_device(applied.state, "pA", routed(retry, (0, 1)), (1, 0), Policies(), 10)
    assert (again.outcome, again.emits, again.state) == ("duplicate", [], applied.state)
    redelivered = link_device(applied.state, "pA", routed(first), (0, 0), Policies(), 10)
    assert redelivered.outcome == "applied" and redelivered.emits == applied.emits


def test_the_profile_stage_settles_user_events_only():
    first = identify(ts=5, user="U", set={"city": "Oslo"}, message_id="req")
    command = routed(first)
    applied = assemble_profile(None, "pU", command, (0, 0), Policies(), 10)
    assert applied.outcome == "applied"
    again = assemble_profile(applied.state, "pU", command, (3, 0), Policies(), 10)
    assert (again.outcome, again.emits) == ("duplicate", [])
    forwarded = {k: v for k, v in command.items() if k != "warnings"}  # settled elsewhere
    later = assemble_profile(applied.state, "pU", forwarded, (4, 0), Policies(), 10)
    assert later.outcome is None and later.emits


def test_a_retried_call_is_applied_once_end_to_end():
    first = identify(ts=1, user="u", set={"city": "Oslo"}, message_id="req-1")
    retry = {**first, "set": {**first["set"], "city": "Rome"}}  # same x-request-id, other body
    out = simulate([("u", first), ("u", retry)], partitions=1)
    (profile,) = out.profiles.values()
    assert profile["attributes"]["city"] == "Oslo"
    assert out.rejections == []


def test_a_retried_device_call_with_a_refused_part_is_refused_once():
    first = identify(ts=1, anon="A", set={"email": "not an email"}, message_id="req-1")
    out = simulate([("A", first), ("A", first), ("A", first)], partitions=1)
    assert [(r["messageId"], r["reason"]) for r in out.rejections] == [
        ("req-1", out.rejections[0]["reason"])
    ]


def test_a_message_id_reused_with_other_identifiers_is_another_call():
    a = identify(ts=1, user="u", set={"city": "Oslo"}, message_id="req-1")
    b = identify(ts=1, user="v", set={"city": "Rome"}, message_id="req-1")
    out = simulate([("u", a), ("v", b)], partitions=2)
    assert sorted(p["attributes"]["city"] for p in out.profiles.values()) == ["Oslo", "Rome"]


def test_rejected_messages_are_settled_by_the_first_stage():
    junk = identify(ts=1, user="null", set={"city": "Oslo"}, message_id="req-2")
    out = simulate([("x", junk), ("x", junk)], partitions=1)
    assert sum(r["wholeMessage"] for r in out.rejections) == 2  # each one visible


def test_source_is_kept_on_rejections():
    assert Source.from_json(["in", 1, 2]).to_json() == ["in", 1, 2]


def test_entries_stay_in_stamp_order_and_older_ones_without_positions_count():
    seen = None
    for ts, message_id in [(5, "e"), (1, "a"), (3, "c"), (3, "b"), (9, "z")]:
        seen = remember(seen, ts, message_id, (ts, 0))
    assert [e[:2] for e in seen] == [[1, "a"], [3, "b"], [3, "c"], [5, "e"], [9, "z"]]
    before_positions = [[2, "old"]]  # remembered by a version without positions
    assert is_duplicate(before_positions, 2, "old", (0, 0), W)
    assert remember(before_positions, 2, "old", (7, 1)) == before_positions
