"""Every input format, decided per message, through the first stage as a worker runs it."""

import io
import json

import fastavro
from hypothesis import given
from hypothesis import strategies as st

from streams.rules.events import from_json
from streams.rules.input_formats import InputFormats, confluent_schema_id
from streams.rules.outcomes import BY_ANONYMOUS, BY_PROFILE, REJECTIONS, Source
from streams.rules.routing import route
from streams.runtime.output_encoding import inlined
from tests.factories import identify
from tests.unit.rules.test_mapping import OURS, SEGMENT
from topology.avro import IDENTIFY_EVENT

SOURCE = Source("in", 0, 42, timestamp=1_767_225_000_000)
V1 = json.loads(inlined(IDENTIFY_EVENT))
# A producer a version ahead: one more optional field, which a v1 reader skips.
TIER = {"name": "tier", "type": ["null", "string"], "default": None}
V2 = {**V1, "fields": [*V1["fields"], TIER]}
# A writer that IdentifyEvent cannot be resolved from: messageId is a number there.
OTHER = {**V1, "fields": [{"name": "messageId", "type": "long"}, *V1["fields"][1:]]}
SCHEMAS = {n: fastavro.parse_schema(schema) for n, schema in ((1, V1), (2, V2), (3, OTHER))}
REGISTRY = InputFormats(writer_schemas={**SCHEMAS, 4: None}, default_workspace="acme")


def framed(schema_id, schema, record):
    """Confluent's wire format: magic byte, 4-byte schema id, the Avro body."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    return b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()


def outcome(raw, inputs=REGISTRY):
    """The event the first stage forwards, and the reasons it refused (with bytes kept)."""
    emits = route(raw, SOURCE, now=1, inputs=inputs).emits
    forwards = [e for e in emits if e.output in (BY_ANONYMOUS, BY_PROFILE)]
    refusals = [e.value for e in emits if e.output == REJECTIONS]
    for refusal in refusals:
        if refusal["wholeMessage"] and not refusal["messageId"]:
            assert refusal["rawValue"] == raw  # an unreadable message keeps its bytes
    event = from_json(forwards[0].value["event"]) if forwards else None
    return event, [r["reason"] for r in refusals]


def test_single_object_avro_stays():
    event, refused = outcome(IDENTIFY_EVENT.encode(identify(user="u", set={"city": "Oslo"})))
    assert (event.user_id, event.set, refused) == ("u", {"city": "Oslo"}, [])


def test_confluent_framed_avro_is_read_with_its_writer_schema():
    record = identify(user="u", anon="d", set={"city": "Oslo"})
    event, refused = outcome(framed(1, V1, record))
    assert (event.user_id, event.anonymous_id, refused) == ("u", "d", [])
    assert event.set == {"city": "Oslo"}


def test_a_newer_writer_schema_with_an_optional_field_resolves_to_ours():
    event, refused = outcome(framed(2, V2, {**identify(user="u"), "tier": "gold"}))
    assert (event.user_id, refused) == ("u", [])


def test_schema_ids_the_registry_lacks_or_that_do_not_resolve_are_refused_with_their_bytes():
    record = identify(user="u")
    assert outcome(framed(99, V1, record)) == (None, ["unknown_schema"])
    assert outcome(framed(4, V1, record)) == (None, ["schema_mismatch"])  # not Avro
    other = {**record, "messageId": 7}
    assert outcome(framed(3, OTHER, other)) == (None, ["schema_mismatch"])
    assert outcome(framed(1, V1, record)[:-3]) == (None, ["undecodable"])
    assert outcome(framed(1, V1, record) + b"\x00") == (None, ["undecodable"])


def test_without_a_registry_confluent_framing_is_undecodable():
    assert outcome(framed(1, V1, identify(user="u")), InputFormats()) == (None, ["undecodable"])


def test_json_in_any_known_shape():
    event, refused = outcome(json.dumps(OURS).encode())
    assert (event.message_id, event.workspace_id, refused) == ("7f3a9c", "acme", [])
    event, _ = outcome(b"  \n" + json.dumps(SEGMENT).encode())
    assert event.user_id == "97980cfea0067"
    event, _ = outcome(json.dumps({"userId": "u"}).encode())
    assert (event.workspace_id, event.timestamp) == ("acme", SOURCE.timestamp)


def test_what_is_in_no_format_or_no_shape_is_refused_with_its_bytes():
    assert outcome(b"") == (None, ["undecodable"])
    assert outcome(b"not avro, not json") == (None, ["undecodable"])
    assert outcome(b'{"userId": "u"') == (None, ["undecodable"])  # broken JSON text
    assert outcome(b'{"userId": "u", "colour": "red"}') == (None, ["unrecognised_json"])
    assert outcome(b"[1, 2]") == (None, ["unrecognised_json"])
    assert outcome(b'{"userId": "u", "emailOptIn": "perhaps"}') == (None, ["invalid_field"])


def test_the_first_byte_decides():
    assert confluent_schema_id(b"\x00\x00\x00\x01\x02body") == 258
    assert confluent_schema_id(b"\x00\x00\x01") is None  # too short for a schema id
    assert confluent_schema_id(IDENTIFY_EVENT.encode(identify(user="u"))) is None
    assert confluent_schema_id(b'{"userId": "u"}') is None


@given(st.binary(max_size=200))
def test_route_never_raises_whatever_the_bytes(data):
    for payload in (data, b"\x00" + data, b"\x00\x00\x00\x00\x01" + data, b"{" + data):
        for inputs in (REGISTRY, InputFormats()):
            assert route(payload, SOURCE, now=1, inputs=inputs).emits


@given(
    st.sampled_from([1, 2]),
    st.text(min_size=1, max_size=10),
    st.dictionaries(st.sampled_from(["city", "firstName", "company"]), st.text(max_size=10)),
)
def test_every_format_means_the_same(schema_id, user, attributes):
    """One identify call as single-object Avro, Confluent-framed Avro (v1 or v2) and JSON."""
    record = {**identify(user=user, set={**attributes, "custom": {}}), "workspaceId": "acme"}
    single = outcome(IDENTIFY_EVENT.encode(record))
    writer = {1: V1, 2: V2}[schema_id]
    assert outcome(framed(schema_id, writer, record)) == single
    assert outcome(json.dumps(record).encode()) == single
