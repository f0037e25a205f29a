"""Output framing: the Confluent wire format, the registered schema, and refusals that name fields.

The registry itself is faked here (``FakeRegistry`` answers as Confluent's client does); the real
one, and a stock deserializer reading a worker's outputs, are in
tests/integration/test_registry_outputs.py.
"""

import copy
import io
import json
from datetime import UTC, datetime

import fastavro
import pytest
from confluent_kafka.schema_registry import RegisteredSchema, Schema, SchemaRegistryError

from streams.runtime import output_encoding
from streams.runtime.output_encoding import (
    ConfluentFraming,
    OutputSchemaRefused,
    incompatibilities,
    inlined,
    register,
    single_object,
)
from streams.runtime.settings import SchemaRegistry, Settings
from streams.tools.readback import decoder
from topology.avro import PROFILE, PROFILE_MERGE, REJECTION
from topology.topics import declare

TOPOLOGY = declare("app", "p.")

A_PROFILE = {
    "profileId": "0b6f1c2e-8f0a-5d5e-9a51-3c1e2f4d5a6b",
    "workspaceId": "ws-1",
    "userId": "u-1",
    "anonymousIds": ["anon-1"],
    "attributes": {
        "email": "ada@example.com",
        "emailOptIn": "OPTIN",
        "custom": {
            "plan": "pro",
            "since": ("identitystream.v1.DateTime", {"epochMillis": 1767225600000}),
        },
    },
    "unsegmentable": [],
    "createdAt": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    "updatedAt": datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
    "lastMessageId": "m-2",
}


def ours(schema=PROFILE):
    """The registered document of one of our schemas, as a plain dict to edit."""
    return json.loads(inlined(schema))


def parsed(document):
    return fastavro.parse_schema(copy.deepcopy(document))


def field_of(document, name):
    return next(f for f in document["fields"] if f["name"] == name)


@pytest.mark.parametrize("schema", [PROFILE, PROFILE_MERGE, REJECTION])
def test_the_registered_schema_is_self_contained_and_writes_the_same_bytes(schema):
    document = ours(schema)
    names = []

    def collect(node):
        if isinstance(node, dict):
            if node.get("type") in ("record", "enum", "fixed"):
                names.append(node["name"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(document)
    assert len(names) == len(set(names)), "each named type is defined once"
    assert not any(key.startswith("__") for key in json.dumps(document).split('"'))
    if schema is PROFILE:
        standalone, body = io.BytesIO(), io.BytesIO()
        fastavro.schemaless_writer(standalone, parsed(document), A_PROFILE)
        fastavro.schemaless_writer(body, PROFILE.parsed, A_PROFILE)
        assert standalone.getvalue() == body.getvalue()


def test_confluent_framing_is_magic_byte_schema_id_and_the_avro_body():
    frame = ConfluentFraming({TOPOLOGY.profiles.name: (258, PROFILE)})
    data = frame(TOPOLOGY.profiles, A_PROFILE)
    assert data[:5] == b"\x00\x00\x00\x01\x02"
    single = single_object(TOPOLOGY.profiles, A_PROFILE)
    assert data[5:] == single[10:]  # the same body behind another header
    body = io.BytesIO(data[5:])
    decoded = fastavro.schemaless_reader(body, parsed(ours()), return_record_name=True)
    assert decoded["attributes"]["custom"]["since"][1] == {
        "epochMillis": datetime(2026, 1, 1, tzinfo=UTC)
    }
    assert decoded["lastMessageId"] == "m-2"


def test_single_object_by_default_and_confluent_only_with_a_registry():
    assert output_encoding.encoder(Settings()) is single_object
    with pytest.raises(OutputSchemaRefused, match="SCHEMA_REGISTRY_URL"):
        output_encoding.encoder(Settings(output_format="confluent"))


def test_the_output_format_setting():
    assert Settings.from_env({}).output_format == "single-object"
    settings = Settings.from_env({"IDENTITY_STREAM_OUTPUT_FORMAT": "confluent"})
    assert settings.output_format == "confluent"
    assert Settings.from_env(settings.to_env()).output_format == "confluent"
    with pytest.raises(ValueError, match="IDENTITY_STREAM_OUTPUT_FORMAT"):
        Settings.from_env({"IDENTITY_STREAM_OUTPUT_FORMAT": "json"})


def test_identical_and_evolvable_schemas_have_no_incompatibilities():
    document = ours()
    assert incompatibilities(parsed(document), PROFILE.parsed, "old", "new") == []
    older = copy.deepcopy(document)
    older["fields"] = [f for f in older["fields"] if f["name"] != "unsegmentable"]  # has default
    field_of(older, "createdAt")["type"] = "int"  # int is promoted to long
    assert incompatibilities(parsed(older), PROFILE.parsed, "old", "new") == []


def test_a_required_field_the_writer_lacks_is_named():
    older = ours()
    older["fields"] = [f for f in older["fields"] if f["name"] != "lastMessageId"]
    found = incompatibilities(parsed(older), PROFILE.parsed, "registered version 1", "ours")
    assert found == [
        "field Profile.lastMessageId: ours requires it (no default) "
        "and registered version 1 does not have it"
    ]


def test_changed_types_are_named_down_to_nested_fields():
    older = ours()
    field_of(older, "userId")["type"] = ["null", "long"]
    attributes = field_of(older, "attributes")["type"]
    field_of(attributes, "email")["type"] = ["null", "boolean"]
    found = incompatibilities(parsed(older), PROFILE.parsed, "theirs", "ours")
    assert found == [
        "field Profile.userId: theirs writes long, which ours cannot read as null|string",
        "field Profile.attributes.email: theirs writes boolean, which ours cannot read as "
        "null|string",
    ]


def test_enum_symbols_and_record_names_are_checked():
    newer = ours()
    attributes = field_of(newer, "attributes")["type"]
    opt_in = field_of(attributes, "emailOptIn")["type"][1]
    opt_in["symbols"] = [*opt_in["symbols"], "SNOOZED"]
    found = incompatibilities(parsed(newer), PROFILE.parsed, "theirs", "ours")
    assert found[0] == (
        "field Profile.attributes.emailOptIn: theirs writes OptIn symbols SNOOZED, which ours "
        "does not know (and its enum has no default)"
    )
    assert len(found) == 6  # every channel's opt-in is that enum
    renamed = {**ours(), "name": "com.acme.Person"}
    (problem,) = incompatibilities(parsed(renamed), PROFILE.parsed, "theirs", "ours")
    assert "com.acme.Person" in problem
    assert "identitystream.v1.Profile" in problem


class FakeRegistry:
    """Answers like confluent_kafka's SchemaRegistryClient for one subject under BACKWARD."""

    def __init__(self, registered=None):
        self.versions = [] if registered is None else [json.dumps(registered)]
        self.calls = []

    def lookup_schema(self, subject, schema):
        self.calls.append("lookup")
        if schema.schema_str in self.versions:
            version = self.versions.index(schema.schema_str) + 1
            return RegisteredSchema(subject, version, 100 + version, None, schema)
        raise SchemaRegistryError(404, 40403, "Schema not found")

    def register_schema(self, subject, schema):
        self.calls.append("register")
        if self.versions:
            latest = fastavro.parse_schema(json.loads(self.versions[-1]))
            mine = fastavro.parse_schema(json.loads(schema.schema_str))
            if incompatibilities(latest, mine, "", ""):
                raise SchemaRegistryError(409, 0, "Incompatible artifact: lastMessageId")
        self.versions.append(schema.schema_str)
        return 100 + len(self.versions)

    def get_compatibility(self, subject=None):
        return "NONE" if subject else "BACKWARD"  # Apicurio's answer without a subject level

    def get_versions(self, subject):
        return list(range(1, len(self.versions) + 1))

    def get_version(self, subject, version):
        number = len(self.versions) if version == "latest" else version
        schema = Schema(self.versions[number - 1], "AVRO")
        return RegisteredSchema(subject, number, 100 + number, None, schema)


def test_registering_returns_the_id_and_looks_an_existing_schema_up_first():
    registry = FakeRegistry()
    assert register(registry, "p.profiles", PROFILE, "http://r") == 101
    assert register(registry, "p.profiles", PROFILE, "http://r") == 101
    assert registry.calls == ["lookup", "register", "lookup"]


def test_an_incompatible_registered_schema_refuses_the_start_naming_the_field():
    older = ours()
    older["fields"] = [f for f in older["fields"] if f["name"] != "lastMessageId"]
    with pytest.raises(OutputSchemaRefused) as refused:
        register(FakeRegistry(older), "p.profiles", PROFILE, "http://r")
    message = str(refused.value)
    assert "subject 'p.profiles-value'" in message
    assert "not BACKWARD-compatible" in message
    assert "field Profile.lastMessageId: our Profile requires it (no default)" in message
    assert "registered version 1" in message


def test_an_unreachable_registry_refuses_the_start():
    settings = Settings(
        output_format="confluent",
        schema_registry=SchemaRegistry(url="http://127.0.0.1:9/apis/ccompat/v7"),
    )
    with pytest.raises(OutputSchemaRefused, match="cannot reach the schema registry"):
        output_encoding.encoder(settings)


def test_readers_take_single_object_and_need_a_registry_for_confluent_frames():
    decode = decoder(PROFILE, SchemaRegistry())
    assert decode(single_object(TOPOLOGY.profiles, A_PROFILE))["lastMessageId"] == "m-2"
    framed = ConfluentFraming({TOPOLOGY.profiles.name: (7, PROFILE)})(TOPOLOGY.profiles, A_PROFILE)
    with pytest.raises(ValueError, match="SCHEMA_REGISTRY_URL"):
        decode(framed)
