"""Publish identify events with confluent-kafka, partitioned exactly as faust would partition them.

``murmur2_random`` is the Java client's (and aiokafka's) partitioner; librdkafka's default
(consistent_random, CRC32) would put the same key on a different partition than a faust
producer, which matters as soon as anyone relies on key placement.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException, Producer
from tqdm import tqdm

from topology.avro import IDENTIFY_EVENT

Message = tuple[str | None, dict[str, Any] | bytes]  # (key, record or already-encoded bytes)


def producer_config(kafka_config: dict[str, str]) -> dict[str, Any]:
    return {
        **kafka_config,
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "compression.type": "lz4",
    }


def publish(
    kafka_config: dict[str, str],
    topic: str,
    messages: Iterable[Message],
    total: int | None = None,
    progress: bool = False,
) -> int:
    """Publish every message (records are Avro-encoded), wait for all acks; return the count.

    Raises on the first delivery failure: a publisher that loses events silently is worse than
    one that stops.
    """
    producer = Producer(producer_config(kafka_config))
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    sent = 0
    with tqdm(total=total, disable=not progress, unit="ev", desc="publishing") as bar:
        for key, value in messages:
            payload = value if isinstance(value, bytes) else IDENTIFY_EVENT.encode(value)
            while True:
                try:
                    producer.produce(topic, payload, key, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            sent += 1
            bar.update(1)
            if failures:
                break
    remaining = producer.flush(60)
    if failures or remaining:
        raise KafkaException(f"{len(failures)} failed, {remaining} undelivered: {failures[:3]}")
    return sent
