import io
import re

import fastavro
from hypothesis import given
from hypothesis import strategies as st

from streams.rules import avro_bodies
from tests.factories import identify
from topology import avro_source
from topology.avro import (
    HEADER_LEN,
    IDENTIFY_EVENT,
    PROFILE,
    PROFILE_MERGE,
    REJECTION,
    AvroDecodeError,
)


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


def _fastavro_bytes(schema, record) -> bytes:
    out = io.BytesIO()
    out.write(schema.header)
    fastavro.schemaless_writer(out, schema.parsed, record)
    return out.getvalue()


def _outcome(read) -> object:
    """A read's record, or its refusal (without the object addresses fastavro's messages hold)."""
    try:
        return read()
    except Exception as exc:
        return type(exc), getattr(exc, "reason", None), re.sub(r"0x[0-9a-f]+", "0x", str(exc))


_NS = "identitystream.v1."
_ITEMS = st.one_of(st.text(max_size=80), st.integers(-(2**64), 2**64), st.floats(), st.booleans())
_CUSTOM = st.one_of(
    st.tuples(st.just("string"), st.text(max_size=80)),
    st.tuples(st.just("long"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("double"), st.floats()),
    st.tuples(st.just("boolean"), st.booleans()),
    st.tuples(st.just(_NS + "DateTime"), st.fixed_dictionaries({"epochMillis": st.integers()})),
    st.tuples(st.just(_NS + "ListValue"), st.fixed_dictionaries({"items": st.lists(_ITEMS)})),
    st.tuples(st.just(_NS + "JsonObject"), st.fixed_dictionaries({"json": st.text()})),
    st.integers(),  # no branch named: fastavro's to write (or refuse)
)


@given(
    st.dictionaries(st.text(max_size=70), _CUSTOM, max_size=4),
    st.one_of(st.none(), st.sampled_from(["OPTIN", "OPTOUT"]), st.just("other")),
    st.one_of(st.none(), st.text()),
    st.integers(-(2**64), 2**64),
)
def test_fast_path_writes_and_reads_what_fastavro_does(custom, opt_in, user, created):
    """The generated codec is only a fast path: the bytes, records and refusals are fastavro's."""
    attributes = {f["name"]: None for f in PROFILE.parsed["fields"][4]["type"]["fields"]} | {
        "custom": custom,
        "emailOptIn": opt_in,
        "city": user,
    }
    record = {
        "profileId": "p",
        "workspaceId": "ws",
        "userId": user,
        "anonymousIds": ["a", "b"] if user else [],
        "attributes": attributes,
        "unsegmentable": [],
        "createdAt": created,
        "updatedAt": 5,
        "lastMessageId": "m",
    }
    expected = _outcome(lambda: _fastavro_bytes(PROFILE, record))
    actual = _outcome(lambda: PROFILE.encode(record))
    assert type(actual) is type(expected)  # both bytes, or both an error
    generated = _outcome(lambda: avro_bodies.write_profile(record))
    if isinstance(generated, bytes):  # else a refusal: AvroSchema has fastavro write it
        assert PROFILE.header + generated == expected
    if isinstance(expected, bytes):
        assert actual == expected
        read_slowly = _outcome(lambda: PROFILE._read_slowly(actual)[0])
        assert repr(_outcome(lambda: PROFILE.decode(actual))) == repr(read_slowly)  # NaN


@given(st.data())
def test_fast_path_reads_corrupt_bodies_as_fastavro_does(data):
    good = IDENTIFY_EVENT.encode(
        identify(user="u", set={"city": "x", "custom": {"n": ("long", 3), "s": ("string", "v")}})
    )
    body = bytearray(good)
    for _ in range(data.draw(st.integers(1, 3))):
        body[data.draw(st.integers(10, len(body) - 1))] = data.draw(st.integers(0, 255))
    body = bytes(body[: data.draw(st.integers(10, len(body)))])

    def slowly() -> object:
        record, end = IDENTIFY_EVENT._read_slowly(body)
        return record if end == len(body) else ("trailing", len(body) - end)

    def fast() -> object:
        try:
            return IDENTIFY_EVENT.decode(body)
        except AvroDecodeError as exc:
            if "trailing" in str(exc):
                return "trailing", int(str(exc).split()[0])
            raise

    assert _outcome(fast) == _outcome(slowly)


_ATTRIBUTE_FIELDS = [f["name"] for f in IDENTIFY_EVENT.parsed["fields"][6]["type"][1]["fields"]]
_OPT_INS = st.sampled_from(["OPTIN", "OPTOUT", "BOUNCED", "INVALID"])
_SCALARS = st.one_of(
    st.text(max_size=70),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
)


@st.composite
def _attributes(draw: st.DrawFn) -> dict[str, object] | None:
    if draw(st.booleans()):
        return None
    record: dict[str, object] = {name: None for name in _ATTRIBUTE_FIELDS}
    for name in draw(st.lists(st.sampled_from(_ATTRIBUTE_FIELDS), max_size=8, unique=True)):
        if name.endswith("OptIn"):
            record[name] = draw(_OPT_INS)
        elif name == "location":
            record[name] = {"latitude": draw(st.floats(-90, 90)), "longitude": 1.5}
        elif name == "custom":
            record[name] = draw(st.dictionaries(st.text(max_size=70), _CUSTOM, max_size=4))
        else:
            record[name] = draw(st.text(max_size=200))  # past 63 bytes: a two-byte length
    return record


@given(
    _attributes(),
    _attributes(),
    st.lists(st.sampled_from(_ATTRIBUTE_FIELDS[:-1]), max_size=3),
    st.dictionaries(st.text(max_size=20), st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats())),
    st.dictionaries(st.text(max_size=20), st.lists(_SCALARS, max_size=3), max_size=2),
    st.integers(-(2**62), 2**62),
    st.one_of(st.none(), st.text(max_size=100)),
    st.booleans(),
)
def test_generated_reader_reads_what_fastavro_does(
    set_, set_once, unset, increment, append, ts, user, erase
):
    """The input's reader (generated, compiled with the rules: topology.avro_source) returns
    fastavro's records, every branch of every union included, and refuses what it refuses
    (whereupon AvroSchema.decode has fastavro say why)."""
    record = identify(user=user, anon="a", set=set_, set_once=set_once, unset=unset, ts=ts)
    record |= {"increment": increment, "append": append, "remove": append, "erase": erase}
    body = _outcome(lambda: _fastavro_bytes(IDENTIFY_EVENT, record))
    if not isinstance(body, bytes):  # a datum fastavro refuses to write: nothing to read
        return
    expected = _outcome(lambda: IDENTIFY_EVENT._read_slowly(body))
    actual = _outcome(lambda: avro_bodies.read_identify_event(body, HEADER_LEN))
    if isinstance(expected, tuple) and isinstance(expected[0], type):  # fastavro refuses it
        assert isinstance(actual, tuple) and isinstance(actual[0], type)
    else:
        assert repr(actual) == repr(expected)


def test_generated_codec_is_the_schemas_():
    """The file compiled with the rules is what topology.avro_source writes for the schemas now."""
    assert avro_source.TARGET.read_text() == avro_source.source(), (
        "run: .venv/bin/python -m topology.avro_source"
    )


def test_generated_codec_takes_the_records_of_every_topic():
    """An event as a producer sends it, and a profile, a merge and a rejection as the rules emit
    them, are the generated codec's to write and read back (not refused and left to fastavro),
    with fastavro's bytes and records."""
    attributes = {f["name"]: None for f in PROFILE.parsed["fields"][4]["type"]["fields"]}
    attributes |= {
        "email": "a@b.co",
        "city": "Zürich",
        "emailOptIn": "OPTIN",
        "location": {"latitude": 47.4, "longitude": 8.5},
        "custom": {
            "plan": ("string", "pro"),
            "seats": ("long", 2**40),
            "ltv": ("double", 12.5),
            "vip": ("boolean", True),
            "renewal": (_NS + "DateTime", {"epochMillis": 1_767_225_600_000}),
            "tags": (_NS + "ListValue", {"items": ["a", 1, 2.5, False]}),
            "raw": (_NS + "JsonObject", {"json": '{"k": 1}'}),
        },
    }
    profile = {
        "profileId": "p",
        "workspaceId": "ws",
        "userId": "u" * 100,  # a two-byte length
        "anonymousIds": ["a", "b"],
        "attributes": attributes,
        "unsegmentable": ["custom.raw"],
        "createdAt": 1_767_225_600_000,
        "updatedAt": -5,
        "lastMessageId": "m",
    }
    merge = {
        "workspaceId": "ws",
        "anonymousId": "a",
        "fromProfileId": "q",
        "intoProfileId": "p",
        "userId": "u",
        "previousProfileId": None,
        "eventTime": 1_767_225_600_000,
        "causeMessageId": "m",
        "absorbed": profile,
    }
    rejection = {
        "reason": "type_mismatch",
        "message": "custom.plan is a string",
        "subject": "custom.plan",
        "wholeMessage": False,
        "messageId": "m",
        "workspaceId": None,
        "sourceTopic": "identify-events",
        "sourcePartition": 3,
        "sourceOffset": 2**33,
        "rawValue": b"\xc3\x01",
        "rejectedAt": 1_767_225_600_000,
    }
    event = identify(user="u", anon="a", set=attributes, set_once={**attributes, "custom": {}})
    event |= {"profileId": None, "increment": {"n": 1, "x": 0.5}, "append": {"l": ["a", 2]}}
    event |= {"remove": {}, "erase": False}
    for schema, read, write, record in (
        (IDENTIFY_EVENT, avro_bodies.read_identify_event, avro_bodies.write_identify_event, event),
        (PROFILE, avro_bodies.read_profile, avro_bodies.write_profile, profile),
        (PROFILE_MERGE, avro_bodies.read_profile_merge, avro_bodies.write_profile_merge, merge),
        (REJECTION, avro_bodies.read_rejection, avro_bodies.write_rejection, rejection),
    ):
        written = schema.header + write(record)
        assert written == _fastavro_bytes(schema, record)
        assert read(written, HEADER_LEN) == schema._read_slowly(written)
