"""The ceiling: the fastest a Python process here moves the same input through Kafka.

A plain confluent-kafka consumer decodes every message with fastavro and produces it again,
nothing else. Our pipeline does that plus identity resolution and state; its throughput is
reported as a ratio of this one.
"""

from __future__ import annotations

import contextlib
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from topology.avro import IDENTIFY_EVENT, AvroDecodeError


def pass_through(kafka_config: dict[str, str], source: str, target: str, expected: int) -> float:
    """Consume ``expected`` messages of ``source``, decode, produce to ``target``; return ev/s."""
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": f"ceiling-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    producer = Producer({**kafka_config, "linger.ms": 5, "partitioner": "murmur2_random"})
    partitions = consumer.list_topics(source, timeout=10).topics[source].partitions
    consumer.assign([TopicPartition(source, p, 0) for p in partitions])
    seen = 0
    started = time.monotonic()
    while seen < expected:
        for message in consumer.consume(1000, timeout=1.0):
            if message.error():
                continue
            with contextlib.suppress(AvroDecodeError):  # as the pipeline: bad input moves on
                IDENTIFY_EVENT.decode(message.value())
            while True:
                try:
                    producer.produce(target, message.value(), message.key())
                    break
                except BufferError:
                    producer.poll(0.05)
            seen += 1
        producer.poll(0)
    producer.flush(60)
    elapsed = time.monotonic() - started
    consumer.close()
    return seen / elapsed
