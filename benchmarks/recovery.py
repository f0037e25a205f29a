"""A bigger profile table for `make bench`'s recovery step, made of the run's own profiles.

A few thousand profiles restore in a fraction of a second, too little to measure a rate or the
time "per 100,000 profiles" the README promises. So before the worker restarts on an empty data
dir, the profile-state changelog gets copies of the run's real profile states under new keys,
each in its original's partition (so it lands in the same table partition, as faust would put
it), until the table holds the asked number of profiles. The copies are never read by events.
"""

from __future__ import annotations

import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition


def _latest(kafka_config: dict[str, str], topic: str) -> dict[bytes, tuple[int, bytes]]:
    """key -> (partition, value) of the changelog's live records."""
    consumer = Consumer({**kafka_config, "group.id": f"bench-{uuid.uuid4().hex}"})
    live: dict[bytes, tuple[int, bytes]] = {}
    try:
        ends: dict[int, int] = {}
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high - 1
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        while ends:
            for message in consumer.consume(10_000, 1.0):
                if message.error() is not None:
                    continue
                if message.value() is None:
                    live.pop(message.key(), None)
                else:
                    live[message.key()] = (message.partition(), message.value())
                if message.offset() >= ends.get(message.partition(), -1):
                    ends.pop(message.partition(), None)
    finally:
        consumer.close()
    return live


def grow_profiles(kafka_config: dict[str, str], topic: str, profiles: int) -> int:
    """Copy live records of ``topic`` under new keys until it holds ``profiles``; the count."""
    live = _latest(kafka_config, topic)
    originals = [(key, value) for key, value in live.items() if not key.startswith(b'"\\u0000')]
    if not originals:
        return len(live)
    producer = Producer({**kafka_config, "linger.ms": 50, "compression.type": "lz4"})
    made = len(live)
    copy = 0
    while made < profiles:
        key, (partition, value) = originals[copy % len(originals)]
        copied = key[:-1] + f"~{copy}".encode() + b'"'  # still a JSON string
        while True:
            try:
                producer.produce(topic, value, copied, partition)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        made += 1
        copy += 1
    producer.flush(60)
    return made
