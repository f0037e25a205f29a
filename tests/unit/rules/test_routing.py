from hypothesis import given
from hypothesis import strategies as st

from streams.rules.events import IdentifyEvent, from_json, to_json
from streams.rules.identity import IdKind, derive_profile_id
from streams.rules.outcomes import BY_ANONYMOUS, BY_PROFILE, REJECTIONS, Source
from streams.rules.routing import route
from tests.factories import identify
from topology.avro import IDENTIFY_EVENT

SOURCE = Source("in", 0, 42)


def routed(**kwargs):
    """The event's forward, if any, and every refusal: those of a message without an event
    go out at once, the others travel with the event (its owner publishes them)."""
    emits = route(IDENTIFY_EVENT.encode(identify(**kwargs)), SOURCE, now=1).emits
    forwards = [e for e in emits if e.output != REJECTIONS]
    refusals = [e.value for e in emits if e.output == REJECTIONS]
    assert len(forwards) <= 1
    if forwards:
        assert refusals == []
        return forwards[0], forwards[0].value["warnings"]
    return None, refusals


def test_events_naming_a_device_go_to_the_device_partition():
    forward, refusals = routed(user=" u1 ", anon="d1", workspace="w")
    assert forward.output == BY_ANONYMOUS
    assert forward.key == derive_profile_id("w", IdKind.ANONYMOUS, "d1")
    assert refusals == []
    event = from_json(forward.value["event"])
    assert (event.user_id, event.anonymous_id) == ("u1", "d1")
    assert forward.value["source"] == ["in", 0, 42]


def test_events_naming_only_a_user_go_to_the_user_profile():
    forward, _ = routed(user="u1", workspace="w")
    assert forward.output == BY_PROFILE
    assert forward.key == derive_profile_id("w", IdKind.USER, "u1")
    assert forward.value["op"] == "event"


def test_junk_user_id_is_refused_but_the_device_still_carries_the_event():
    forward, refusals = routed(user="guest", anon="d1", workspace="w", set={"city": "Oslo"})
    assert forward.key == derive_profile_id("w", IdKind.ANONYMOUS, "d1")
    assert [(r["reason"], r["subject"], r["wholeMessage"]) for r in refusals] == [
        ("blocklisted_identifier", "userId", False)
    ]
    assert refusals[0]["sourceOffset"] == 42
    assert from_json(forward.value["event"]).set == {"city": "Oslo"}


def test_event_without_any_usable_identifier_is_refused_whole():
    forward, refusals = routed(user="null", anon="   ")
    assert forward is None
    assert [r["reason"] for r in refusals] == [
        "empty_identifier",
        "blocklisted_identifier",
        "missing_identity",
    ]
    assert refusals[-1]["wholeMessage"]
    assert routed()[1][0]["reason"] == "missing_identity"


def test_bad_envelope_is_refused_whole():
    assert routed(user="u", workspace=" ")[1][0]["reason"] == "missing_workspace"
    assert routed(user="u", message_id=" ")[1][0]["reason"] == "missing_message_id"


def test_invalid_json_object_is_refused_alone():
    bad = ("identitystream.v1.JsonObject", {"json": "[1, 2]"})
    record = {"user": "u", "set": {"city": "Oslo", "custom": {"prefs": bad, "p": "x"}}}
    forward, refusals = routed(**record)
    assert [(r["reason"], r["subject"]) for r in refusals] == [("invalid_value", "custom.prefs")]
    assert from_json(forward.value["event"]).set == {"city": "Oslo", "custom.p": ["string", "x"]}


def test_custom_values_travel_with_the_event_and_the_login_data_is_the_users():
    forward, _ = routed(anon="d1", workspace="w", set={"custom": {"n": 1}})
    assert forward.output == BY_ANONYMOUS
    assert from_json(forward.value["event"]).set == {"custom.n": ["number", 1]}
    login, _ = routed(anon="d1", user="u1", workspace="w", set={"custom": {"n": 1}})
    assert login.key == derive_profile_id("w", IdKind.ANONYMOUS, "d1")  # linking hands it on


def test_undecodable_bytes_are_refused_with_their_raw_bytes():
    (emit,) = route(b"\x00garbage", SOURCE, now=1).emits
    assert emit.output == REJECTIONS
    assert emit.value["reason"] == "undecodable"
    assert emit.value["rawValue"] == b"\x00garbage"


@given(st.binary(max_size=200))
def test_route_never_raises_and_always_says_something(data):
    for payload in (data, IDENTIFY_EVENT.header + data):
        assert route(payload, SOURCE, now=1).emits


_names = st.sampled_from(["city", "custom.plan", "custom.n", "firstName"])
_typed = st.one_of(st.just(["string", "x"]), st.just(["number", 2]), st.just("Oslo"))


@given(
    anon=st.none() | st.just("a-1"),
    user=st.none() | st.just("u-1"),
    profile_id=st.none() | st.just("p-1"),
    set_=st.dictionaries(_names, _typed, max_size=2),
    set_once=st.dictionaries(_names, _typed, max_size=2),
    unset=st.frozensets(_names, max_size=2),
    increment=st.dictionaries(st.just("custom.n"), st.integers(-3, 3), max_size=1),
    append=st.dictionaries(st.just("custom.l"), st.just(["x"]), max_size=1),
    erase=st.none() | st.sampled_from(["recreate", "block"]),
)
def test_the_forwarded_event_reads_back_as_the_event(
    anon, user, profile_id, set_, set_once, unset, increment, append, erase
):
    """The JSON between stages leaves out what is empty, and reads back as the same event;
    the complete form that older workers wrote reads back as the same event too."""
    event = IdentifyEvent(
        "m-1",
        5,
        "ws",
        anon,
        user,
        profile_id,
        set_,
        set_once,
        unset,
        increment=increment,
        append=append,
        erase=erase,
    )
    sent = to_json(event)
    assert from_json(sent) == event
    assert all(value not in (None, {}, []) for value in sent.values())
    complete = {
        "messageId": "m-1",
        "timestamp": 5,
        "workspaceId": "ws",
        "anonymousId": anon,
        "userId": user,
        "profileId": profile_id,
        "set": set_,
        "setOnce": set_once,
        "unset": sorted(unset),
        "increment": increment,
        "append": append,
        "remove": {},
        "erase": erase,
    }
    assert from_json(complete) == event
