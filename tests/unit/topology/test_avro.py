from hypothesis import given
from hypothesis import strategies as st

from tests.factories import identify
from topology.avro import IDENTIFY_EVENT, PROFILE, REJECTION, AvroDecodeError


def test_round_trip_with_single_object_header():
    record = identify(user="u", set={"email": "a@b.c", "custom": {"n": ("long", 3)}})
    data = IDENTIFY_EVENT.encode(record)
    assert data[:2] == b"\xc3\x01"
    decoded = IDENTIFY_EVENT.decode(data)
    assert decoded["userId"] == "u"
    assert decoded["set"]["email"] == "a@b.c"
    assert decoded["set"]["custom"] == {"n": 3}


def test_each_schema_has_its_own_fingerprint():
    headers = {IDENTIFY_EVENT.header, PROFILE.header, REJECTION.header}
    assert len(headers) == 3


def reason_of(data: bytes) -> str:
    try:
        IDENTIFY_EVENT.decode(data)
    except AvroDecodeError as exc:
        return exc.reason
    return "ok"


def test_decode_errors_have_reasons():
    good = IDENTIFY_EVENT.encode(identify(user="u"))
    assert reason_of(b"") == "undecodable"
    assert reason_of(b'{"userId": "u"}') == "undecodable"
    assert reason_of(PROFILE.header + good[10:]) == "schema_mismatch"
    assert reason_of(good[:-1]) == "undecodable"
    assert reason_of(good + b"\x00") == "undecodable"
    assert reason_of(good) == "ok"


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_other_errors(data):
    reason_of(data)
    reason_of(IDENTIFY_EVENT.header + data)
