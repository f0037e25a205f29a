from hypothesis import given
from hypothesis import strategies as st

from streams.events import from_json
from streams.identity import IdKind, derive_profile_id
from streams.routing import route
from tests.factories import identify
from topology.avro import IDENTIFY_EVENT


def routed(**kwargs):
    return route(IDENTIFY_EVENT.encode(identify(**kwargs)))


def test_known_user_wins_over_device():
    r = routed(user=" u1 ", anon="d1", workspace="w")
    assert r.profile_id == derive_profile_id("w", IdKind.USER, "u1")
    assert r.rejections == []
    event = from_json(r.event)
    assert (event.user_id, event.anonymous_id) == ("u1", "d1")


def test_junk_user_id_is_refused_but_the_device_still_carries_the_event():
    r = routed(user="guest", anon="d1", workspace="w", set={"city": "Oslo"})
    assert r.profile_id == derive_profile_id("w", IdKind.ANONYMOUS, "d1")
    assert [(x.reason, x.subject, x.whole) for x in r.rejections] == [
        ("blocklisted_identifier", "userId", False)
    ]
    assert from_json(r.event).set == {"city": "Oslo"}


def test_event_without_any_usable_identifier_is_refused_whole():
    r = routed(user="null", anon="   ")
    assert r.event is None
    assert [x.reason for x in r.rejections] == [
        "empty_identifier",
        "blocklisted_identifier",
        "missing_identity",
    ]
    assert r.rejections[-1].whole
    assert routed().rejections[0].reason == "missing_identity"


def test_bad_envelope_is_refused_whole():
    assert routed(user="u", workspace=" ").rejections[0].reason == "missing_workspace"
    assert routed(user="u", message_id=" ").rejections[0].reason == "missing_message_id"


def test_invalid_json_object_is_refused_alone():
    bad = ("identitystream.v1.JsonObject", {"json": "[1, 2]"})
    r = routed(user="u", set={"city": "Oslo", "custom": {"prefs": bad, "plan": "pro"}})
    assert [(x.reason, x.subject) for x in r.rejections] == [("invalid_value", "custom.prefs")]
    assert from_json(r.event).set == {"city": "Oslo", "custom.plan": ["string", "pro"]}


def test_undecodable_bytes_are_flagged_for_raw_keeping():
    r = route(b"\x00garbage")
    assert r.undecodable and r.event is None and r.rejections[0].reason == "undecodable"


@given(st.binary(max_size=200))
def test_route_never_raises_on_arbitrary_bytes(data):
    for payload in (data, IDENTIFY_EVENT.header + data):
        r = route(payload)
        assert r.event is not None or r.rejections
