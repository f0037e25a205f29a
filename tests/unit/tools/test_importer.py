import json

import pytest

from streams.rules.events import parse_identify
from streams.tools.importer import UnusableLine, read_payloads, to_record
from topology.avro import IDENTIFY_EVENT

NOW = 1_767_225_600_000

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


def event_of(payload, workspace="acme"):
    """Through Avro and the worker's own parsing, as a published line would go."""
    record = to_record(payload, workspace, NOW)
    parsed = parse_identify(IDENTIFY_EVENT.decode(IDENTIFY_EVENT.encode(record)))
    return record, parsed


def test_webengage_body():
    record, parsed = event_of(WEBENGAGE)
    assert record["workspaceId"] == "acme" and record["timestamp"] == NOW
    assert parsed.rejections == []
    e = parsed.event
    assert e.user_id == "johndoe"
    assert e.set["whatsappOptIn"] == "OPTIN"
    assert e.set["birthDate"] == "1986-08-19"
    assert e.set["custom.Dollars spent"] == ["number", 461.93]
    assert e.set["custom.Age"] == ["string", "31"]


def test_herogi_body():
    _, parsed = event_of(HEROGI)
    e = parsed.event
    assert e.user_id == "johnwick@example.com"
    assert (e.set["firstName"], e.set["language"], e.set["emailOptIn"]) == ("John", "en", "OPTIN")
    assert e.set["location"] == {"latitude": 12.1218024, "longitude": 100.3194508}
    assert e.set["custom.weddingBudget"] == ["list", ["LUXURY", "PREMIUM"]]


def test_notifyvisitors_entry():
    _, parsed = event_of(NOTIFYVISITORS)
    e = parsed.event
    assert e.user_id == "michael@example.com"
    assert e.set["fullName"] == "Michael Smith"
    assert (e.set["emailOptIn"], e.set["smsOptIn"], e.set["whatsappOptIn"]) == (
        "BOUNCED",
        "INVALID",
        "OPTIN",
    )


def test_message_ids_come_from_the_content_so_a_reimport_is_a_duplicate():
    assert to_record(WEBENGAGE, "w", 1)["messageId"] == to_record(WEBENGAGE, "w", 2)["messageId"]
    assert to_record({**WEBENGAGE, "x-request-id": "r-1"}, "w", 1)["messageId"] == "r-1"


def test_unusable_payloads_say_why():
    with pytest.raises(UnusableLine, match="needs an anonymousId"):
        to_record({"email": "a@b.io"}, "w", NOW)
    with pytest.raises(UnusableLine, match="unknown fields"):
        to_record({"userId": "u", "favouriteColour": "red"}, "w", NOW)
    with pytest.raises(UnusableLine, match="opt-in"):
        to_record({"userId": "u", "smsOptIn": "maybe"}, "w", NOW)


def test_jsonl_and_csv_files(tmp_path):
    jsonl = tmp_path / "users.jsonl"
    jsonl.write_text(json.dumps(WEBENGAGE) + "\n\nnot json\n[1]\n")
    lines = list(read_payloads(jsonl))
    assert lines[0] == (1, WEBENGAGE)
    assert [(n, type(p)) for n, p in lines[1:]] == [(3, UnusableLine), (4, UnusableLine)]
    table = tmp_path / "users.csv"
    table.write_text(
        "userId,phone,emailOptIn,attributes.visits,attributes.vip\nu1,+551155256325,true,3,false\n"
    )
    ((number, payload),) = read_payloads(table)
    assert number == 2
    record = to_record(payload, "w", NOW)
    assert record["set"]["phone"] == "+551155256325"
    assert record["set"]["emailOptIn"] == "OPTIN"
    assert record["set"]["custom"] == {"visits": ("long", 3), "vip": ("boolean", False)}


def test_an_erasure_line():
    record = to_record({"userID": "michael@example.com", "erase": True}, "acme", NOW)
    assert record["erase"] is True
    assert event_of({"userID": "michael@example.com", "erase": True})[1].event.erase
