"""Every JSON shape we read, through the worker's own decoding and parsing, as the stream reads it.

The same mapping serves ``identify-stream publish``: a body means the same in a file and on the
topic (``test_a_file_line_and_a_message_mean_the_same``).
"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.rules.events import parse_identify
from streams.rules.input_formats import InputFormats, Unreadable, decode
from streams.rules.mapping import Unmappable, encode, to_record
from topology.avro import IDENTIFY_EVENT

NOW = 1_767_225_600_000
ARRIVAL = 1_767_225_000_000  # the Kafka timestamp of the message carrying the body

WEBENGAGE = {  # the body of the seed's POST /users example
    "userId": "johndoe",
    "firstName": "John",
    "lastName": "Doe",
    "birthDate": "1986-08-19T15:45:00-0800",
    "gender": "male",
    "email": "john@doe.com",
    "phone": "+551155256325",
    "company": "Alphabet Inc.",
    "whatsappOptIn": True,
    "attributes": {"Age": "31", "Dollars spent": 461.93, "Points earned": 78732},
}
HEROGI = {  # the seed's POST /v1/identify example
    "city": "Bangkok",
    "mobileNo": "+90111111111",
    "email": "johnwick@example.com",
    "firstname": "John",
    "lastname": "Wick",
    "externalUserId": "johnwick@example.com",
    "country": "US",
    "language": "EN",
    "timezone": "Europe/Moscow",
    "emailOptin": "OPTIN",
    "currentLocation": '{"latitude":12.1218024,"longitude":100.3194508}',
    "customAttributes": '{"weddingBudget": ["LUXURY", "PREMIUM"]}',
}
NOTIFYVISITORS = {  # one entry of the seed's "nv" array
    "userID": "michael@example.com",
    "user_attributes": {
        "name": "Michael Smith",
        "first_name": "Michael",
        "mobile": "+551155256325",
        "birth_date": "1990-11-25",
        "email_opt_in": "2",
        "sms_opt_in": "2",
        "whatsapp_opt_in": "1",
    },
}
HEAP_IDENTIFY = {"app_id": "11", "identity": "alice@example.com", "user_id": 5404281197559477}
HEAP_PROPERTIES = {  # the server-side add_user_properties body
    "app_id": "11",
    "identity": "bob@example.com",
    "properties": {"age": "25", "plan": "Startup", "email": "bob2@example2.com"},
}
SEGMENT = {  # Segment's identify spec example (RudderStack and Jitsu send the same)
    "anonymousId": "507f191e810c19729de860ea",
    "channel": "browser",
    "context": {
        "ip": "8.8.8.8",
        "userAgent": "Mozilla/5.0",
        "traits": {"plan": "Free", "city": "Paris"},
    },
    "integrations": {"All": False, "Mixpanel": True},
    "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
    "receivedAt": "2015-02-23T22:28:55.387Z",
    "sentAt": "2015-02-23T22:28:55.111Z",
    "timestamp": "2015-02-23T22:28:55.111Z",
    "traits": {
        "name": "Peter Gibbons",
        "email": "peter@example.com",
        "plan": "premium",
        "logins": 5,
        "birthday": "1985-04-12",
        "address": {"street": "6th St", "city": "San Francisco", "country": "US"},
        "company": {"name": "Initech", "employee_count": 120},
    },
    "type": "identify",
    "userId": "97980cfea0067",
    "version": "1.1",
}
OURS = {  # our IdentifyEvent as JSON
    "messageId": "7f3a9c",
    "timestamp": 1767225600000,
    "workspaceId": "acme",
    "anonymousId": "anon-42",
    "userId": "user-1001",
    "set": {"firstName": "Ada", "emailOptIn": "OPTIN", "custom": {"plan": "premium", "n": 3}},
    "setOnce": {"country": "GB"},
    "unsetCustom": ["cart"],
    "increment": {"visits": 1},
    "append": {"interests": ["cycling"]},
}


def read(body, workspace="acme", arrival=ARRIVAL):
    """The record a worker decodes from a message carrying ``body`` as JSON."""
    raw = json.dumps(body).encode()
    return decode(raw, InputFormats(default_workspace=workspace), NOW, arrival)


def event_of(body, **kwargs):
    parsed = parse_identify(read(body, **kwargs))
    return parsed.event, parsed.rejections


def test_webengage_body():
    record = read(WEBENGAGE)
    assert record["workspaceId"] == "acme"
    assert record["timestamp"].timestamp() * 1000 == ARRIVAL  # no time of its own: the Kafka one
    e, refused = event_of(WEBENGAGE)
    assert refused == []
    assert e.user_id == "johndoe"
    assert e.set["whatsappOptIn"] == "OPTIN"
    assert e.set["birthDate"] == "1986-08-19"
    assert e.set["custom.Dollars spent"] == ["number", 461.93]
    assert e.set["custom.Age"] == ["string", "31"]


def test_herogi_body():
    e, _ = event_of(HEROGI)
    assert e.user_id == "johnwick@example.com"
    assert (e.set["firstName"], e.set["language"], e.set["emailOptIn"]) == ("John", "en", "OPTIN")
    assert e.set["location"] == {"latitude": 12.1218024, "longitude": 100.3194508}
    assert e.set["custom.weddingBudget"] == ["list", ["LUXURY", "PREMIUM"]]


def test_notifyvisitors_entry():
    e, _ = event_of(NOTIFYVISITORS)
    assert e.user_id == "michael@example.com"
    assert e.set["fullName"] == "Michael Smith"
    assert (e.set["emailOptIn"], e.set["smsOptIn"], e.set["whatsappOptIn"]) == (
        "BOUNCED",
        "INVALID",
        "OPTIN",
    )


def test_heap_identify_links_heap_s_anonymous_user_to_the_identity():
    e, refused = event_of(HEAP_IDENTIFY)
    assert refused == []
    assert (e.user_id, e.anonymous_id) == ("alice@example.com", "5404281197559477")
    assert e.set == {}


def test_heap_user_properties():
    e, _ = event_of(HEAP_PROPERTIES)
    assert e.user_id == "bob@example.com" and e.anonymous_id is None
    assert e.set == {
        "email": "bob2@example2.com",
        "custom.age": ["string", "25"],
        "custom.plan": ["string", "Startup"],
    }


def test_segment_identify():
    record = read(SEGMENT)
    assert record["messageId"] == SEGMENT["messageId"]
    assert record["timestamp"].isoformat() == "2015-02-23T22:28:55.111000+00:00"
    e, refused = event_of(SEGMENT)
    assert refused == []
    assert (e.user_id, e.anonymous_id) == ("97980cfea0067", "507f191e810c19729de860ea")
    assert e.set["fullName"] == "Peter Gibbons"
    assert e.set["birthDate"] == "1985-04-12"
    assert (e.set["city"], e.set["country"], e.set["company"]) == ("San Francisco", "US", "Initech")
    assert e.set["custom.plan"] == ["string", "premium"]  # traits win over context.traits
    assert e.set["custom.logins"] == ["number", 5]
    # nested objects are kept whole too, nothing of them lost
    assert json.loads(e.set["custom.address"][1])["street"] == "6th St"
    assert json.loads(e.set["custom.company"][1])["employee_count"] == 120


def test_segment_context_traits_fill_in_and_any_time_field_gives_the_event_time():
    body = {
        "type": "identify",
        "userId": "u",
        "context": {"traits": {"email": "u@example.com"}},
        "sentAt": "2015-02-23T22:28:55Z",
        "receivedAt": "2015-02-23T22:28:59Z",
    }
    e, _ = event_of(body)
    assert e.set == {"email": "u@example.com"}
    assert e.timestamp == 1424730535000


def test_our_record_as_json():
    e, refused = event_of(OURS, workspace="other")
    assert refused == []
    assert (e.message_id, e.workspace_id, e.timestamp) == ("7f3a9c", "acme", 1767225600000)
    assert e.set == {
        "firstName": "Ada",
        "emailOptIn": "OPTIN",
        "custom.plan": ["string", "premium"],
        "custom.n": ["number", 3],
    }
    assert e.set_once == {"country": "GB"}
    assert e.unset == {"custom.cart"}
    assert (e.increment, e.append) == ({"custom.visits": 1}, {"custom.interests": ["cycling"]})


def test_the_workspace_is_the_body_s_else_the_default_else_missing():
    assert read({**WEBENGAGE, "workspaceId": "w1"}, workspace="w2")["workspaceId"] == "w1"
    assert read(WEBENGAGE, workspace="w2")["workspaceId"] == "w2"
    assert read(SEGMENT, workspace="w2")["workspaceId"] == "w2"
    record = read(WEBENGAGE, workspace=None)
    assert record["workspaceId"] == ""
    assert [r.reason for r in parse_identify(record).rejections] == ["missing_workspace"]


def test_message_ids_come_from_the_content_so_a_retry_is_a_duplicate():
    def message_id(body, arrival=ARRIVAL):
        return read(body, arrival=arrival)["messageId"]

    assert message_id(WEBENGAGE) == message_id(WEBENGAGE)  # the same Kafka record again
    # The same body sent again later is a new event: its event time is its Kafka timestamp.
    assert message_id(WEBENGAGE) != message_id(WEBENGAGE, arrival=ARRIVAL + 1)
    # A body with its own time is the same event whenever it is sent.
    timed = {**WEBENGAGE, "timestamp": "2026-01-01T00:00:00Z"}
    assert message_id(timed) == message_id(timed, arrival=ARRIVAL + 1)
    assert message_id({**WEBENGAGE, "x-request-id": "r-1"}) == "r-1"
    # From a file (no Kafka timestamp): the content alone, so a file published twice applies once.
    assert to_record(WEBENGAGE, "w", 1)["messageId"] == to_record(WEBENGAGE, "w", 2)["messageId"]


def test_a_body_that_names_no_one_is_refused_by_the_worker_like_avro():
    e, refused = event_of({"email": "a@b.io"})
    assert e is None and [r.reason for r in refused] == ["missing_identity"]


def test_an_erasure():
    e, _ = event_of({"userID": "michael@example.com", "erase": True})
    assert e.erase == "recreate"
    assert to_record({"userID": "m", "erase": True}, "acme", NOW)["erase"] is True


@pytest.mark.parametrize(
    ("body", "reason", "says"),
    [
        ([WEBENGAGE], "unrecognised_json", "a JSON list"),
        ({"userId": "u", "favouriteColour": "red"}, "unrecognised_json", "unknown fields"),
        ({"nv": [NOTIFYVISITORS]}, "unrecognised_json", "NotifyVisitors batch"),
        ({"batch": [SEGMENT]}, "unrecognised_json", "Segment batch"),
        ({**SEGMENT, "type": "track"}, "unrecognised_json", "'track' call"),
        ({"identity": "u", "event": "Signed Up"}, "unrecognised_json", "Heap track"),
        ({"identity": "u", "colour": "red"}, "unrecognised_json", "unknown fields"),
        ({"userId": "u", "smsOptIn": "maybe"}, "invalid_field", "smsOptIn: 'maybe'"),
        ({"userId": "u", "timestamp": "yesterday"}, "invalid_field", "timestamp"),
        ({"userId": "u", "attributes": ["plan"]}, "invalid_field", "attributes"),
        ({"userId": "u", "customAttributes": "{plan"}, "invalid_field", "customAttributes"),
        ({**SEGMENT, "traits": "premium"}, "invalid_field", "traits"),
        ({"userId": "u", "unset": ["favouriteColour"]}, "invalid_field", "unset"),
        ({"userId": "u", "append": {"tags": "vip"}}, "invalid_field", "append"),
        ({"userId": "u", "gender": 5}, "invalid_field", "gender"),
    ],
)
def test_json_that_cannot_be_an_identify_says_why(body, reason, says):
    with pytest.raises(Unreadable, match=says) as refused:
        read(body)
    assert refused.value.reason == reason


def test_a_file_line_and_a_message_mean_the_same():
    for body in (WEBENGAGE, HEROGI, NOTIFYVISITORS, HEAP_PROPERTIES, SEGMENT, OURS):
        from_file = IDENTIFY_EVENT.decode(encode(to_record(body, "acme", NOW)))
        assert from_file == read(body, arrival=None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)
field_names = st.sampled_from(
    [*OURS, *WEBENGAGE, *HEROGI, *SEGMENT, *HEAP_PROPERTIES, "user_attributes", "x-request-id"]
)


@given(st.dictionaries(field_names | st.text(max_size=4), json_values, max_size=6))
def test_any_json_object_becomes_a_record_or_a_reason(body):
    try:
        record = read(body)
    except Unreadable as exc:
        reason = exc.reason
    else:
        reason = None
        parse_identify(record)  # whatever it refuses, it refuses with reasons
    assert reason in (None, "unrecognised_json", "invalid_field")


@given(
    st.dictionaries(
        st.sampled_from(["firstName", "city", "email", "country", "phone", "gender"]),
        st.text(min_size=1, max_size=12),
    ),
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8)
        | st.lists(st.text(max_size=4), max_size=3),
        max_size=4,
    ),
)
def test_our_record_means_the_same_as_json_and_as_avro(system, custom):
    as_json = {**OURS, "set": {**system, "custom": custom}}
    tagged = {
        name: to_record({"userId": "u", "attributes": {name: value}}, "w", 0)["set"]["custom"][name]
        for name, value in custom.items()
    }
    as_avro = {**OURS, "set": {**system, "custom": tagged}}
    avro = parse_identify(IDENTIFY_EVENT.decode(IDENTIFY_EVENT.encode(as_avro)))
    assert parse_identify(read(as_json)) == avro


def test_unmappable_is_a_value_error_with_a_reason():
    with pytest.raises(Unmappable) as refused:
        to_record({"userId": "u", "smsOptIn": "maybe"}, "w", NOW)
    assert (refused.value.reason, refused.value.subject) == ("invalid_field", "smsOptIn")
    assert isinstance(refused.value, ValueError)
