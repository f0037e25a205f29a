"""The project's Avro schemas through a real registry with Confluent's API and Confluent's client.

Uses ``SCHEMA_REGISTRY_URL`` when set (your registry), else the local one (tests/conftest.py).
Profile refers to the shared Attributes record by name, so Attributes is registered under its
own subject and Profile names it as a schema reference, the way Confluent's registry shares types.
"""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import (
    Schema,
    SchemaReference,
    SchemaRegistryClient,
    SchemaRegistryError,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

pytestmark = pytest.mark.integration

SCHEMAS = Path(__file__).resolve().parents[2] / "avro_schemas"
PROFILE = json.loads((SCHEMAS / "identitystream.v1.Profile.avsc").read_text())
ATTRIBUTES = json.loads((SCHEMAS / "identitystream.v1.Attributes.avsc").read_text())


@pytest.fixture
def client(schema_registry_url) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": schema_registry_url})


@pytest.fixture
def profiles(client) -> Iterator[tuple[str, Schema]]:
    """A fresh ``profiles-value`` subject and the Profile schema registered in it (version 1)."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    attributes_subject = f"{prefix}identitystream.v1.Attributes"
    subject = f"{prefix}profiles-value"
    client.register_schema(attributes_subject, Schema(json.dumps(ATTRIBUTES), "AVRO"))
    reference = SchemaReference("identitystream.v1.Attributes", attributes_subject, 1)
    schema = Schema(json.dumps(PROFILE), "AVRO", [reference])
    client.register_schema(subject, schema)
    yield subject, schema
    for name in (subject, attributes_subject):  # referrer first
        client.delete_subject(name)
        client.delete_subject(name, permanent=True)


def _with_field(profile: Schema, field: dict) -> Schema:
    """The registered Profile schema with one more field, keeping its reference to Attributes."""
    evolved = {**PROFILE, "fields": [*PROFILE["fields"], field]}
    return Schema(json.dumps(evolved), "AVRO", profile.references)


def test_global_compatibility_is_backward_like_confluent(client):
    assert client.get_compatibility() == "BACKWARD"


def test_a_profile_round_trips_through_the_registry(client, profiles):
    subject, schema = profiles
    profile = {
        "profileId": "0b6f1c2e-8f0a-5d5e-9a51-3c1e2f4d5a6b",
        "workspaceId": "ws-1",
        "userId": "u-1",
        "anonymousIds": ["anon-1"],
        "attributes": {"email": "ada@example.com", "city": "Oslo", "custom": {"plan": "pro"}},
        "unsegmentable": [],
        "createdAt": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "updatedAt": datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
        "lastMessageId": "m-2",
    }
    context = SerializationContext(subject.removesuffix("-value"), MessageField.VALUE)
    serialize = AvroSerializer(client, schema, conf={"auto.register.schemas": False})
    payload = serialize(profile, context)

    registered = client.get_latest_version(subject)
    assert payload[0] == 0  # Confluent's wire format: magic byte, 4-byte schema id, Avro body
    assert int.from_bytes(payload[1:5], "big") == registered.schema_id

    decoded = AvroDeserializer(client)(payload, context)
    defaults = {field["name"]: field.get("default") for field in ATTRIBUTES["fields"]}
    assert decoded == {**profile, "attributes": {**defaults, **profile["attributes"]}}


def test_backward_compatibility_accepts_an_optional_field_and_refuses_a_required_one(
    client, profiles
):
    subject, schema = profiles
    optional = {"name": "segment", "type": ["null", "string"], "default": None}
    client.register_schema(subject, _with_field(schema, optional))
    assert client.get_latest_version(subject).version == 2

    required = {"name": "tier", "type": "string"}  # no default: old profiles cannot be read
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, _with_field(schema, required))
    assert refused.value.http_status_code == 409  # error_code: Confluent 409, Apicurio 0
    assert client.get_latest_version(subject).version == 2
