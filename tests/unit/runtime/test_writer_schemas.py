"""Writer schema lookups: found ones kept, unknown ones refused, a failing registry waited for."""

import asyncio
import io
import logging
from pathlib import Path

import fastavro
from confluent_kafka.schema_registry import (
    RegisteredSchema,
    Schema,
    SchemaReference,
    SchemaRegistryError,
)
from prometheus_client import CollectorRegistry

from streams.runtime.output_encoding import inlined
from streams.runtime.writer_schemas import WriterSchemas
from topology.avro import IDENTIFY_EVENT

SCHEMAS = Path(__file__).resolve().parents[3] / "avro_schemas"
EVENT = Schema(inlined(IDENTIFY_EVENT), "AVRO")
RECORD = {"messageId": "m", "timestamp": 1, "workspaceId": "w", "userId": "u"}


def framed(schema_id: int) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + b"body"


class FakeRegistry:
    """Answers like SchemaRegistryClient; ``failures`` lookups fail first, as a registry away."""

    def __init__(self, schemas, failures=0, versions=None):
        self.schemas = schemas
        self.versions = versions or {}
        self.failures = failures
        self.asked: list[int] = []

    def get_schema(self, schema_id):
        self.asked.append(schema_id)
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("connection refused")
        if schema_id not in self.schemas:
            raise SchemaRegistryError(404, 40403, "Schema not found")
        return self.schemas[schema_id]

    def get_version(self, subject, version):
        return RegisteredSchema(subject, version, 7, None, self.versions[subject, version])


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def resolver(client, clock=None, metrics=None):
    return WriterSchemas(client, metrics, first_backoff_s=0.001, clock=clock or Clock())


def test_the_ids_of_framed_messages_are_fetched_once_and_kept():
    client = FakeRegistry({5: EVENT})
    schemas = resolver(client)
    asyncio.run(schemas.resolve([framed(5), b'{"userId": "u"}', None, IDENTIFY_EVENT.header]))
    asyncio.run(schemas.resolve([framed(5)]))
    assert client.asked == [5]
    body = io.BytesIO(IDENTIFY_EVENT.encode(RECORD)[len(IDENTIFY_EVENT.header) :])
    decoded = fastavro.schemaless_reader(body, schemas.known[5], IDENTIFY_EVENT.parsed)
    assert decoded["userId"] == "u"


def test_an_unknown_id_is_left_out_and_asked_again_only_after_a_while(caplog):
    client, clock, metrics = FakeRegistry({}), Clock(), CollectorRegistry()
    schemas = resolver(client, clock, metrics)
    with caplog.at_level(logging.WARNING):
        asyncio.run(schemas.resolve([framed(9)]))
    assert 9 not in schemas.known
    assert "schema id 9 is not in the schema registry" in caplog.text
    asyncio.run(schemas.resolve([framed(9)]))
    assert client.asked == [9]
    clock.now += 61
    asyncio.run(schemas.resolve([framed(9)]))
    assert client.asked == [9, 9]
    assert metrics.get_sample_value("identity_stream_schema_registry_unknown_ids_total") == 2


def test_a_failing_registry_holds_the_batch_until_it_answers(caplog):
    client, metrics = FakeRegistry({5: EVENT}, failures=3), CollectorRegistry()
    schemas = resolver(client, metrics=metrics)
    with caplog.at_level(logging.WARNING):
        asyncio.run(schemas.resolve([framed(5)]))
    assert client.asked == [5, 5, 5, 5]
    assert 5 in schemas.known
    assert metrics.get_sample_value("identity_stream_schema_registry_errors_total") == 3
    assert "the batch waits, retrying" in caplog.text and "ConnectionRefusedError" in caplog.text


def test_references_are_resolved_and_other_schema_types_are_not_read():
    attributes = (SCHEMAS / "identitystream.v1.Attributes.avsc").read_text()
    event = (SCHEMAS / "identitystream.v1.IdentifyEvent.avsc").read_text()
    reference = SchemaReference("identitystream.v1.Attributes", "attributes-subject", 1)
    client = FakeRegistry(
        {
            5: Schema(event, "AVRO", [reference]),
            6: Schema('syntax = "proto3"; message M {}', "PROTOBUF"),
            7: Schema("{not avro", "AVRO"),
        },
        versions={("attributes-subject", 1): Schema(attributes, "AVRO")},
    )
    schemas = resolver(client)
    asyncio.run(schemas.resolve([framed(5), framed(6), framed(7)]))
    assert schemas.known[5]["name"] == "identitystream.v1.IdentifyEvent"
    assert schemas.known[6] is None and schemas.known[7] is None
