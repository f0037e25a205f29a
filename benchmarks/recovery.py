"""A bigger profile table for `make bench`'s recovery step, made of the run's own profiles.

A few thousand profiles restore in a fraction of a second, too little to measure a rate or the
time "per 100,000 profiles" the README promises. So before the worker restarts on an empty data
dir, the profile-state changelog gets copies of the run's real profile states under new keys,
each in its original's partition (so it lands in the same table partition, as faust would put
it), until the table holds the asked number of profiles. The copies are never read by events.
"""

from __future__ import annotations

from confluent_kafka import Producer

from streams.tools.readback import read_all


def _latest(kafka_config: dict[str, str], topic: str) -> dict[str, tuple[int, bytes]]:
    """key -> (partition, value) of the changelog's live records."""
    live: dict[str, tuple[int, bytes]] = {}
    for key, value, partition in read_all(kafka_config, topic):
        if key is None:
            continue
        if value is None:
            live.pop(key, None)
        else:
            live[key] = (partition, value)
    return live


def grow_profiles(kafka_config: dict[str, str], topic: str, profiles: int) -> int:
    """Copy live records of ``topic`` under new keys until it holds ``profiles``; the count."""
    live = _latest(kafka_config, topic)
    originals = [(key, value) for key, value in live.items() if not key.startswith('"\\u0000')]
    if not originals:
        return len(live)
    producer = Producer({**kafka_config, "linger.ms": 50, "compression.type": "lz4"})
    made = len(live)
    copy = 0
    while made < profiles:
        key, (partition, value) = originals[copy % len(originals)]
        copied = f'{key[:-1]}~{copy}"'.encode()  # still a JSON string
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
