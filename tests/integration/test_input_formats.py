"""Every input format on one topic, through a real worker and a real schema registry.

Producers as users write them: JSON (our record, a Segment identify, a WebEngage body without a
workspace) and Avro in Confluent's wire format, serialized by confluent-kafka's stock
``AvroSerializer`` against the registry (yours with SCHEMA_REGISTRY_URL, else the local
Apicurio; tests/conftest.py), including a producer a schema version ahead of the worker.
"""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.rules.identity import IdKind, derive_profile_id
from streams.runtime.output_encoding import inlined
from streams.runtime.settings import SchemaRegistry
from streams.tools.readback import lag
from tests.factories import identify
from tests.unit.rules.test_mapping import OURS, SEGMENT, WEBENGAGE
from topology.avro import IDENTIFY_EVENT

pytestmark = pytest.mark.integration

V1 = inlined(IDENTIFY_EVENT)  # what the worker knows
# A producer a version ahead: one more optional field (BACKWARD compatible, so registered).
V2 = json.dumps(
    {
        **json.loads(V1),
        "fields": [
            *json.loads(V1)["fields"],
            {"name": "tier", "type": ["null", "string"], "default": None},
        ],
    }
)


@pytest.fixture
def registry(schema_registry_url) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": schema_registry_url})


@pytest.fixture
def inputs(deployment, schema_registry_url, registry):
    """The deployment reading Confluent-framed input; JSON without a workspace goes to acme."""
    deployment.settings = deployment.settings.with_changes(
        schema_registry=SchemaRegistry(url=schema_registry_url), default_workspace="acme"
    )
    yield deployment
    subject = f"{deployment.topology.identify_events.name}-value"
    if subject in registry.get_subjects():
        registry.delete_subject(subject)
        registry.delete_subject(subject, permanent=True)


def serialize(registry, topic, schema, record):
    """As a producer with the stock serializer: registered under <topic>-value, then framed."""
    serializer = AvroSerializer(registry, schema, conf={"auto.register.schemas": True})
    return serializer(record, SerializationContext(topic, MessageField.VALUE))


def profile_of(deployment, user, workspace="acme"):
    return deployment.profiles().get(derive_profile_id(workspace, IdKind.USER, user))


def test_json_and_registry_avro_producers_make_the_same_profiles(inputs, registry):
    topic = inputs.topology.identify_events.name
    avro_v1 = identify(user="ada", workspace="acme", set={"city": "Oslo", "custom": {}})
    avro_v2 = {
        **identify(ts=2_000, user="ada", workspace="acme", set={"company": "ACME", "custom": {}}),
        "tier": "gold",
    }
    v1 = serialize(registry, topic, V1, avro_v1)
    v2 = serialize(registry, topic, V2, avro_v2)
    assert int.from_bytes(v1[1:5], "big") != int.from_bytes(v2[1:5], "big")
    unknown_id = b"\x00" + (2**31 - 1).to_bytes(4, "big") + v1[5:]
    inputs.start_worker()
    inputs.publish(
        [
            ("ada", v1),
            ("ada", v2),
            ("u", json.dumps(OURS).encode()),
            ("s", json.dumps(SEGMENT).encode()),
            ("w", json.dumps(WEBENGAGE).encode()),  # no workspace: IDENTITY_STREAM_DEFAULT_...
            (None, unknown_id),
            (None, b'{"userId": "x", "favouriteColour": "red"}'),
            (None, b"neither Avro nor JSON"),
        ]
    )
    inputs.wait_processed()

    ada = profile_of(inputs, "ada")
    assert (ada["attributes"]["city"], ada["attributes"]["company"]) == ("Oslo", "ACME")
    ours = profile_of(inputs, OURS["userId"])
    assert ours["attributes"]["custom"]["plan"] == "premium"
    assert ours["anonymousIds"] == [OURS["anonymousId"]]
    segment = profile_of(inputs, SEGMENT["userId"])
    assert segment["attributes"]["fullName"] == "Peter Gibbons"
    assert segment["attributes"]["city"] == "San Francisco"
    webengage = profile_of(inputs, WEBENGAGE["userId"])
    assert webengage["attributes"]["email"] == "john@doe.com"

    refused = {r["reason"]: r for r in inputs.rejections() if r["wholeMessage"]}
    assert refused.keys() == {"unknown_schema", "unrecognised_json", "undecodable"}
    assert refused["unknown_schema"]["rawValue"] == unknown_id  # bytes kept for a replay
    assert inputs.counters()["rejected_by_reason"] == dict.fromkeys(refused, 1)


def test_an_unreachable_registry_holds_the_message_and_loses_nothing(inputs, registry):
    topic = inputs.topology.identify_events.name
    framed = serialize(
        registry, topic, V1, identify(user="bo", workspace="acme", set={"custom": {}})
    )
    good = inputs.settings.schema_registry
    inputs.settings = inputs.settings.with_changes(
        schema_registry=SchemaRegistry(url="http://127.0.0.1:9/apis/ccompat/v7")  # nothing there
    )
    worker = inputs.start_worker()
    inputs.publish([("bo", framed), ("j", json.dumps({"userId": "jo"}).encode())])
    deadline = time.monotonic() + 60
    while "the batch waits" not in worker.log_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "the batch waits" in worker.log_text()
    time.sleep(3)
    assert worker.alive()
    # Held, not committed: the input is still waiting, nothing refused.
    assert lag(inputs.kafka_config, inputs.settings.app_id, [topic]) > 0
    assert inputs.rejections() == []

    worker.stop()  # the held batch is dropped, not awaited: the worker stops by itself
    assert worker.process is not None and worker.process.returncode == 0
    inputs.settings = inputs.settings.with_changes(schema_registry=good)
    inputs.start_worker()  # the registry is back (restart, as after an outage)
    inputs.wait_processed()
    assert profile_of(inputs, "bo") is not None
    assert profile_of(inputs, "jo") is not None
    assert inputs.rejections() == []
