"""Outputs in Confluent's wire format, read back the way a Kafka Connect sink reads them.

A worker started with IDENTITY_STREAM_OUTPUT_FORMAT=confluent registers its output schemas in a
real registry (yours with SCHEMA_REGISTRY_URL, else the local Apicurio; tests/conftest.py) and
frames every record with the id it got. ``confluent_kafka``'s stock ``AvroDeserializer``, which
knows nothing of this project, must read every profile, merge and rejection; tombstones must stay
tombstones; and a worker facing an incompatible schema under ``<topic>-value`` must not start.
"""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.runtime.output_encoding import inlined, outputs, subject
from streams.runtime.settings import SchemaRegistry
from streams.tools.readback import decoder, latest_by_key, read_all
from streams.tools.workload import WorkloadSpec, generate
from tests.simulation import simulate
from topology.avro import PROFILE

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(schema_registry_url) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": schema_registry_url})


@pytest.fixture
def confluent(deployment, schema_registry_url, registry):
    """The test's deployment with Confluent-framed outputs; its subjects deleted afterwards."""
    deployment.settings = deployment.settings.with_changes(
        output_format="confluent", schema_registry=SchemaRegistry(url=schema_registry_url)
    )
    yield deployment
    existing = set(registry.get_subjects())
    for spec in outputs(deployment.topology):
        if subject(spec.name) in existing:
            registry.delete_subject(subject(spec.name))
            registry.delete_subject(subject(spec.name), permanent=True)


def test_a_stock_deserializer_reads_the_worker_s_outputs(confluent, registry):
    messages = generate(WorkloadSpec(people=80, seed=21, junk_rate=0.03))
    confluent.start_worker()
    confluent.publish(messages)
    confluent.wait_processed()
    want = simulate(messages)

    topology, config = confluent.topology, confluent.kafka_config
    for spec in outputs(topology):
        schema_id = registry.get_latest_version(subject(spec.name)).schema_id
        deserialize = AvroDeserializer(registry)
        context = SerializationContext(spec.name, MessageField.VALUE)
        latest = {}
        history = read_all(config, spec.name)
        assert history, spec.name
        for key, raw, _ in history:
            if raw is None:  # a tombstone stays a tombstone, without a header
                latest.pop(key, None)
                continue
            assert raw[0] == 0
            assert int.from_bytes(raw[1:5], "big") == schema_id
            latest[key] = deserialize(raw, context)
        if spec is topology.profiles:
            assert any(raw is None for _, raw, _ in history), "merges tombstone profiles"
            assert latest.keys() == want.profiles.keys()
            for key, profile in latest.items():
                expected = want.profiles[key]
                for name in ("userId", "anonymousIds", "lastMessageId", "createdAt"):
                    assert profile[name] == expected[name]
                assert profile["attributes"]["email"] == expected["attributes"]["email"]
        if spec is topology.profile_merges:
            assert latest.keys() == want.merges.keys()
        if spec is topology.rejections:
            assert {r["reason"] for r in latest.values()} >= {"undecodable"}

    # The project's own readers see the same profiles as with single-object framing.
    settings = confluent.settings
    ours = latest_by_key(config, topology.profiles.name, decoder(PROFILE, settings.schema_registry))
    assert ours == want.profiles


def test_an_incompatible_registered_schema_stops_the_worker_naming_the_field(confluent, registry):
    name = subject(confluent.topology.profiles.name)
    older = json.loads(inlined(PROFILE))
    older["fields"] = [f for f in older["fields"] if f["name"] != "lastMessageId"]
    registry.register_schema(name, Schema(json.dumps(older), "AVRO"))
    registry.set_compatibility(name, "BACKWARD")  # whatever your registry's global level

    worker = confluent.start_worker(wait=False)
    assert worker.process is not None
    assert worker.process.wait(timeout=120) != 0
    log = worker.log_text()
    assert f"subject '{name}'" in log
    assert "field Profile.lastMessageId: our Profile requires it (no default)" in log
    assert "Ready" not in log
