"""The demo's producers: every format a record goes out in reads back as the same record."""

import json
from collections import Counter

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.rules.input_formats import InputFormats, confluent_schema_id, decode
from streams.tools import producers
from streams.tools.workload import NS, WorkloadSpec, generate
from topology.avro import IDENTIFY_EVENT

NOW = 1_767_225_600_000
EVENTS = generate(WorkloadSpec(people=200, seed=3))


def as_read(record):
    """What the worker reads from a record published in single-object encoding."""
    return IDENTIFY_EVENT.decode(IDENTIFY_EVENT.encode(record))


def test_every_format_reads_back_as_the_record_it_came_from():
    client = SchemaRegistryClient.new_client({"url": "mock://producers"})
    frame = producers.registry_framing(client, "identify-events")
    mixed = producers.mix(EVENTS, frame)
    ids = {confluent_schema_id(raw) for fmt, (_, raw) in mixed if fmt == producers.CONFLUENT}
    (schema_id,) = ids  # registered once, under identify-events-value
    registered = json.loads(client.get_schema(schema_id).schema_str)
    formats = InputFormats(writer_schemas={schema_id: fastavro.parse_schema(registered)})

    assert [message for _, message in mixed if isinstance(message[1], bytes)]
    assert [key for _, (key, _) in mixed] == [key for key, _ in EVENTS]
    for (fmt, (_, raw)), (_, original) in zip(mixed, EVENTS, strict=True):
        if fmt == producers.JUNK:
            assert raw == original
            continue
        assert decode(raw, formats, NOW) == as_read(original), fmt
    published = Counter(fmt for fmt, _ in mixed)
    assert published.keys() == set(producers.FORMATS)
    assert min(published.values()) >= published[producers.JUNK]


def test_json_cannot_say_a_datetime_or_a_set_once():
    event = {"messageId": "m", "timestamp": NOW, "workspaceId": "w", "userId": "u"}
    when = (NS + "DateTime", {"epochMillis": NOW})
    dated = {**event, "set": {"custom": {"lastPurchaseAt": when}}}
    once = {**event, "setOnce": {"country": "TR", "custom": {}}}
    for record in (dated, once):
        assert producers.segment_identify(record) is None
        assert producers.webengage_body(record) is None


def test_bodies_look_like_their_sources():
    record = {
        "messageId": "m-1",
        "timestamp": NOW + 7,
        "workspaceId": "ws-0",
        "anonymousId": "anon-1",
        "userId": "user-1",
        "set": {"firstName": "Ada", "emailOptIn": "OPTIN", "custom": {"plan": "premium"}},
    }
    assert producers.segment_identify(record) == {
        "type": "identify",
        "messageId": "m-1",
        "timestamp": "2026-01-01T00:00:00.007Z",
        "workspaceId": "ws-0",
        "userId": "user-1",
        "anonymousId": "anon-1",
        "traits": {"firstName": "Ada", "emailOptIn": True, "plan": "premium"},
    }
    assert producers.webengage_body(record) == {
        "x-request-id": "m-1",
        "timestamp": NOW + 7,
        "workspaceId": "ws-0",
        "userId": "user-1",
        "anonymousId": "anon-1",
        "firstName": "Ada",
        "emailOptIn": True,
        "attributes": {"plan": "premium"},
    }
