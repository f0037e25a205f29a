import json
import random
from dataclasses import replace

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.rules import profile
from streams.rules.events import IdentifyEvent, parse_identify
from tests.factories import identify
from topology.avro import IDENTIFY_EVENT, PROFILE

PID = "p-1"


def event(**kwargs) -> IdentifyEvent:
    """An event as the worker sees it: encoded by a producer, decoded, parsed."""
    parsed = parse_identify(IDENTIFY_EVENT.decode(IDENTIFY_EVENT.encode(identify(**kwargs))))
    assert parsed.event is not None, parsed.rejections
    return parsed.event


def fold_all(events, state=None):
    for e in events:
        state = profile.fold(state, e, PID)
    return state


def values(events):
    """Current values by attribute (custom ones are kept by kind; each has one kind here)."""
    return {
        key.split(profile.KIND_SEPARATOR)[0]: value
        for key, value in profile.current_values(fold_all(events)).items()
    }


KIND_OF = {
    "plan": "string",
    "score": "number",
    "visits": "number",
    "ltv": "number",
    "count": "number",
    "vip": "boolean",
    "seen": "datetime",
    "tags": "list",
    "prefs": "json",
}


def shows_own_kinds(name):
    """The workspace's decisions in these tests: each attribute has the one kind it is sent as."""
    return KIND_OF.get(name)


def test_later_event_time_wins_whatever_the_arrival_order():
    old = event(ts=1, user="u", set={"city": "Paris"})
    new = event(ts=2, user="u", set={"city": "Rome"})
    assert values([old, new])["city"] == "Rome"
    assert values([new, old])["city"] == "Rome"


def test_same_time_is_broken_by_message_id():
    a = event(ts=5, user="u", set={"city": "A"}, message_id="m-a")
    b = event(ts=5, user="u", set={"city": "B"}, message_id="m-b")
    assert values([a, b])["city"] == values([b, a])["city"] == "B"


def test_unset_is_a_timestamped_tombstone():
    set_ = event(ts=1, user="u", set={"email": "x@y.z", "custom": {"plan": "free"}})
    unset = event(ts=2, user="u", unset=["email"], unset_custom=["plan"])
    assert values([set_, unset]) == {}
    assert values([unset, set_]) == {}  # the late older write does not resurrect the value
    newer = event(ts=3, user="u", set={"email": "new@y.z"})
    assert values([newer, unset, set_]) == {"email": "new@y.z"}


def test_set_once_earliest_wins_and_any_set_overrides():
    first = event(ts=1, user="u", set_once={"city": "First"})
    second = event(ts=2, user="u", set_once={"city": "Second"})
    assert values([second, first])["city"] == "First"
    later_set = event(ts=3, user="u", set={"city": "Set"})
    earlier_set = event(ts=0, user="u", set={"city": "Set0"})
    assert values([first, later_set])["city"] == "Set"
    assert values([first, earlier_set])["city"] == "Set0"  # already set: set_once is ignored
    after_unset = event(ts=4, user="u", unset=["city"])
    once_after = event(ts=5, user="u", set_once={"city": "Again"})
    assert values([after_unset, once_after])["city"] == "Again"
    assert "city" not in values([first, after_unset])


def test_set_and_unset_of_one_name_in_one_event_is_a_set():
    e = event(ts=1, user="u", set={"city": "Kept"}, unset=["city"])
    assert values([e])["city"] == "Kept"


def test_identity_fields_and_times_join():
    a = event(ts=10, user="u", anon="dev-1", message_id="m-1")
    b = event(ts=5, user="u", anon="dev-2", message_id="m-2")
    state = fold_all([a, b])
    assert state["anonymousIds"] == ["dev-1", "dev-2"]
    assert (state["createdAt"], state["updatedAt"], state["lastMessageId"]) == (5, 10, "m-1")


def test_render_applies_channel_defaults_and_encodes():
    ns = "identitystream.v1."
    custom = {
        "plan": ("string", "pro"),
        "visits": ("long", 3),
        "ltv": ("double", 2.5),
        "vip": ("boolean", False),
        "seen": (ns + "DateTime", {"epochMillis": 1_700_000_000_123}),
        "tags": (ns + "ListValue", {"items": ["a", 1, True]}),
        "prefs": (ns + "JsonObject", {"json": '{"a": 1}'}),
    }
    state = fold_all([event(ts=1, user="u", set={"smsOptIn": "OPTOUT", "custom": custom})])
    rendered = profile.render(state, shows_own_kinds)
    attrs = rendered["attributes"]
    assert attrs["smsOptIn"] == "OPTOUT"
    assert attrs["emailOptIn"] == "OPTIN"
    assert attrs["whatsappOptIn"] == "OPTOUT"
    decoded = PROFILE.decode(PROFILE.encode(rendered))["attributes"]["custom"]
    assert decoded["plan"] == "pro" and decoded["visits"] == 3 and decoded["ltv"] == 2.5
    assert decoded["vip"] is False
    assert decoded["tags"] == (ns + "ListValue", {"items": ["a", 1, True]})
    assert decoded["seen"][1]["epochMillis"].timestamp() == 1_700_000_000.123


def test_state_survives_a_json_round_trip_unchanged():
    state = fold_all([event(ts=1, user="u", set={"custom": {"n": ("long", 1)}}, anon="d")])
    again = json.loads(json.dumps(state))
    assert again == state
    assert profile.fold(again, event(ts=1, user="u"), PID)["lww"] == state["lww"]


# --- order independence -------------------------------------------------------------------------

NAMES = ["city", "email", "custom.plan", "custom.score"]
TAGS = ["a", "b", 1, True]
VALUES = {
    "city": st.sampled_from(["A", "B", "C"]),
    "email": st.sampled_from(["a@x.io", "b@x.io"]),
    "custom.plan": st.sampled_from([["string", "free"], ["string", "pro"]]),
    "custom.score": st.sampled_from([["number", 1], ["number", 2.5]]),
}


@st.composite
def events(draw):
    count = draw(st.integers(1, 12))
    out = []
    for n in range(count):
        ops = {}
        for kind in ("set", "set_once"):
            names = draw(st.sets(st.sampled_from(NAMES), max_size=2))
            ops[kind] = {name: draw(VALUES[name]) for name in names}
        unset = draw(st.sets(st.sampled_from(NAMES), max_size=1)) - ops["set"].keys()
        increment = draw(
            st.dictionaries(st.just("custom.count"), st.sampled_from([1, -2, 0.5]), max_size=1)
        )
        append = draw(
            st.dictionaries(
                st.just("custom.tags"), st.lists(st.sampled_from(TAGS), max_size=2), max_size=1
            )
        )
        remove = draw(
            st.dictionaries(
                st.just("custom.tags"), st.lists(st.sampled_from(TAGS), max_size=1), max_size=1
            )
        )
        out.append(
            IdentifyEvent(
                message_id=f"m{n:02d}",
                timestamp=draw(st.integers(0, 4)),  # few distinct times: many ties
                workspace_id="ws",
                anonymous_id=draw(st.sampled_from([None, "d1", "d2"])),
                user_id="u",
                profile_id=None,
                set=ops["set"],
                set_once=ops["set_once"],
                unset=frozenset(unset),
                increment=increment,
                append=append,
                remove=remove,
            )
        )
    return out


@settings(max_examples=300)
@given(events(), st.randoms(use_true_random=False), st.integers(1, 4))
def test_any_order_any_split_and_redelivery_give_the_same_profile(evs, rnd: random.Random, parts):
    reference = fold_all(evs)
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    assert fold_all(shuffled) == reference
    # split over partitions, each folded on its own, then the partial profiles joined
    buckets = [[] for _ in range(parts)]
    for e in shuffled:
        buckets[rnd.randrange(parts)].append(e)
    partials = [fold_all(b) for b in buckets if b]
    joined = partials[0]
    for p in partials[1:]:
        joined = profile.join(joined, p)
    assert joined == reference
    # redelivery: folding any event again changes nothing
    assert fold_all([rnd.choice(evs)], reference) == reference


@settings(max_examples=300)
@given(events(), st.booleans())
def test_a_fold_without_increments_or_list_edits_is_the_join_it_stands_for(evs, plain):
    """``fold`` builds such states directly (``_fold_registers``): byte for byte what the join
    with the event's own profile (``_fold_joined``) gives, after any history."""
    if plain:  # most of the input: only sets, set-onces and unsets
        evs = [replace(e, increment={}, append={}, remove={}) for e in evs]
    state = None
    for e in evs:
        folded = profile.fold(state, e, PID)
        if state is None:
            expected = profile.from_event(e, PID)
        else:
            expected = profile._fold_joined(state, e, PID)
        assert orjson.dumps(folded) == orjson.dumps(expected)
        state = folded


@settings(max_examples=300)
@given(events())
def test_values_follow_the_documented_rule(evs):
    """Latest set wins; else the earliest set_once if nothing or only an older unset precedes."""
    got = values(evs)
    for name in NAMES:
        writes = [
            ((e.timestamp, e.message_id), e.set.get(name))
            for e in evs
            if name in e.set or name in e.unset
        ]
        onces = [((e.timestamp, e.message_id), e.set_once[name]) for e in evs if name in e.set_once]
        last = max(writes, default=None, key=lambda w: w[0])
        first = min(onces, default=None, key=lambda w: w[0])
        if last is not None and last[1] is not None:
            expected = last[1]
        elif first is not None and (last is None or first[0] > last[0]):
            expected = first[1]
        else:
            expected = None
        assert got.get(name) == expected, name


# --- increment, append, remove ------------------------------------------------------------------


def test_increments_add_up_after_the_latest_set_and_count_once():
    set_ = event(ts=5, user="u", set={"custom": {"n": 10}})
    before = IDENTIFY_EVENT.decode(IDENTIFY_EVENT.encode(identify(ts=4, user="u")))
    inc = [
        parse_identify(
            {**before, "timestamp": ts, "messageId": f"i{ts}", "increment": {"n": d}}
        ).event
        for ts, d in ((3, 100), (6, 1), (7, 2.5))
    ]
    for order in ([set_, *inc], [*reversed(inc), set_]):
        assert values(order)["custom.n"] == ["number", 13.5]  # the increment at 3 predates the set
    assert values([*inc, inc[1], inc[1]])["custom.n"] == ["number", 103.5]  # no set: from 0
    unset = event(ts=10, user="u", unset_custom=["n"])
    assert "custom.n" not in values([set_, *inc, unset])


def test_append_and_remove_are_a_set_by_event_time():
    base = event(
        ts=1, user="u", set={"custom": {"tags": ("identitystream.v1.ListValue", {"items": ["a"]})}}
    )
    raw = IDENTIFY_EVENT.decode(IDENTIFY_EVENT.encode(identify(user="u")))

    def op(ts, **ops):
        return parse_identify({**raw, "timestamp": ts, "messageId": f"o{ts}", **ops}).event

    add_b = op(2, append={"tags": ["b", "a"]})
    remove_a = op(3, remove={"tags": ["a"]})
    re_add_a = op(4, append={"tags": ["a"]})
    assert values([base, add_b])["custom.tags"] == ["list", ["a", "b"]]
    assert values([remove_a, add_b, base])["custom.tags"] == ["list", ["b"]]
    assert values([re_add_a, remove_a, base, add_b])["custom.tags"] == ["list", ["a", "b"]]
    later_set = event(
        ts=9, user="u", set={"custom": {"tags": ("identitystream.v1.ListValue", {"items": []})}}
    )
    assert values([base, add_b, later_set])["custom.tags"] == ["list", []]


def test_json_objects_are_flagged_as_unsegmentable():
    prefs = ("identitystream.v1.JsonObject", {"json": '{"a": 1}'})
    state = fold_all([event(ts=1, user="u", set={"custom": {"prefs": prefs, "plan": "x"}})])
    assert profile.render(state, shows_own_kinds)["unsegmentable"] == ["prefs"]


def test_json_view_is_plain_json():
    seen = ("identitystream.v1.DateTime", {"epochMillis": 1_700_000_000_123})
    prefs = ("identitystream.v1.JsonObject", {"json": '{"a": 1}'})
    state = fold_all(
        [event(ts=1, user="u", set={"city": "Oslo", "custom": {"seen": seen, "prefs": prefs}})]
    )
    view = profile.to_json_view(state, shows_own_kinds)
    assert view["attributes"]["city"] == "Oslo"
    assert view["attributes"]["whatsappOptIn"] == "OPTOUT"
    assert view["attributes"]["custom"] == {
        "prefs": {"a": 1},
        "seen": "2023-11-14T22:13:20.123+00:00",
    }
    assert view["createdAt"] == "1970-01-01T00:00:00.001+00:00"
    assert json.loads(json.dumps(view)) == view
