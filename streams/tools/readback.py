"""Reading results back from Kafka: wait until a worker has caught up, then read a topic's end.

"Caught up" is judged from the broker, not from the worker: the consumer group's committed
offsets equal the end offsets of every input and internal topic. faust publishes an event's
outputs before it commits the event's offset, so at that point every output is on its topic.
Outputs are read in whichever framing the worker wrote them (see ``decoder``).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.runtime.output_encoding import MAGIC
from streams.runtime.settings import SchemaRegistry
from topology.avro import AvroSchema


def decoder(schema: AvroSchema, registry: SchemaRegistry) -> Callable[[bytes], dict[str, Any]]:
    """Decode ``schema``'s records framed either way the worker writes them.

    Single-object Avro as ``schema.decode`` does; Confluent's wire format (magic byte 0 and a
    schema id, IDENTITY_STREAM_OUTPUT_FORMAT=confluent) through ``registry``, the writer schema
    fetched once per id and resolved into ``schema``, so both give the same records and versions
    written in different formats compare equal.
    """
    client = SchemaRegistryClient(registry.client_config()) if registry.url else None
    writers: dict[int, Any] = {}

    def decode(data: bytes) -> dict[str, Any]:
        if data[:1] != MAGIC:
            return schema.decode(data)
        if client is None:
            raise ValueError(
                f"a {schema.name} in Confluent's wire format: set SCHEMA_REGISTRY_URL to read it"
            )
        schema_id = int.from_bytes(data[1:5], "big")
        if schema_id not in writers:
            written = client.get_schema(schema_id).schema_str
            writers[schema_id] = fastavro.parse_schema(json.loads(written))
        body = io.BytesIO(data)
        body.seek(5)
        record = fastavro.schemaless_reader(
            body,
            writers[schema_id],
            schema.parsed,
            return_record_name=True,
            return_record_name_override=True,
        )
        assert isinstance(record, dict)
        return record

    return decode


def _consumer(kafka_config: dict[str, str], group_id: str) -> Consumer:
    return Consumer(
        {
            **kafka_config,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def lag(kafka_config: dict[str, str], group_id: str, topics: Iterable[str]) -> int:
    """Messages not yet committed by ``group_id`` over all partitions of ``topics``."""
    consumer = _consumer(kafka_config, group_id)
    try:
        total = 0
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            tps = [TopicPartition(topic, p) for p in meta.partitions]
            for tp in consumer.committed(tps, timeout=10):
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                done = tp.offset if tp.offset >= 0 else low
                total += max(high - done, 0)
        return total
    finally:
        consumer.close()


def wait_caught_up(
    kafka_config: dict[str, str],
    group_id: str,
    topics: list[str],
    timeout: float = 120.0,
    on_poll: Callable[[int], None] | None = None,
) -> None:
    """Block until ``group_id`` has committed everything in ``topics`` (checked twice in a row)."""
    deadline = time.monotonic() + timeout
    clean_checks = 0
    while True:
        remaining = lag(kafka_config, group_id, topics)
        if on_poll:
            on_poll(remaining)
        clean_checks = clean_checks + 1 if remaining == 0 else 0
        if clean_checks >= 2:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group_id} still has {remaining} messages to process")
        time.sleep(0.5)


def messages(kafka_config: dict[str, str], topic: str) -> list[Message]:
    """Every message of ``topic`` up to its current end, as librdkafka gives them."""
    consumer = _consumer(kafka_config, f"readback-{time.monotonic_ns()}")
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        ends: dict[int, int] = {}
        assignment = []
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
                assignment.append(TopicPartition(topic, p, OFFSET_BEGINNING))
        out: list[Message] = []
        if not assignment:
            return out
        consumer.assign(assignment)
        while ends:
            msg = consumer.poll(1.0)
            if msg is None:
                # Offsets can have gaps (compaction, control records): trust the positions.
                for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                    if tp.offset >= ends[tp.partition]:
                        ends.pop(tp.partition)
                continue
            if msg.error():
                raise RuntimeError(str(msg.error()))
            out.append(msg)
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
        return out
    finally:
        consumer.close()


def read_all(
    kafka_config: dict[str, str], topic: str, decode: Callable[[bytes], Any] | None = None
) -> list[tuple[str | None, Any, int]]:
    """Every message of ``topic`` up to its current end: (key, decoded value or None, partition)."""
    out: list[tuple[str | None, Any, int]] = []
    for msg in messages(kafka_config, topic):
        key = msg.key().decode() if msg.key() is not None else None
        raw = msg.value()
        out.append((key, decode(raw) if decode and raw is not None else raw, msg.partition()))
    return out


def latest_by_key(
    kafka_config: dict[str, str], topic: str, decode: Callable[[bytes], Any]
) -> dict[str, Any]:
    """The compacted view of a topic: latest value per key, tombstoned keys removed."""
    latest: dict[str, Any] = {}
    for key, value, _ in read_all(kafka_config, topic, decode):
        if key is None:
            continue
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = value
    return latest
