"""Create the declared topics idempotently, with confluent-kafka's admin client.

Creating them up front (rather than letting a client auto-create) is what gives the compacted
profiles topic its cleanup policy and the input its retention; an existing topic with a different
partition count is an error, since re-keyed data would land on the wrong partitions.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

from topology.topics import TopicSpec


class TopologyMismatch(RuntimeError):
    """An existing topic disagrees with its declaration."""


def ensure_topics(
    kafka_config: Mapping[str, str],
    specs: Iterable[TopicSpec],
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create missing topics, verify existing ones; return the names that were created."""
    admin = AdminClient(dict(kafka_config))
    wanted = list(specs)
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, replication_factor, config=dict(s.config)) for s in wanted],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except Exception as exc:
            error = exc.args[0] if exc.args else None
            if not (
                isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
            ):
                raise
    # A new topic reaches the metadata a moment after its creation is acknowledged.
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        counts = {s.name: len(topics[s.name].partitions) if s.name in topics else 0 for s in wanted}
        wrong = [s for s in wanted if counts[s.name] != s.partitions]
        if not wrong:
            break
        if time.monotonic() > deadline or any(counts[s.name] for s in wrong):
            spec = wrong[0]
            raise TopologyMismatch(
                f"topic {spec.name} has {counts[spec.name]} partitions, "
                f"the topology declares {spec.partitions}"
            )
        time.sleep(0.1)
    return created


def delete_topics(
    kafka_config: Mapping[str, str], names: Iterable[str], timeout: float = 30.0
) -> None:
    """Delete topics, ignoring the ones that do not exist."""
    admin = AdminClient(dict(kafka_config))
    for future in admin.delete_topics(list(names), operation_timeout=timeout).values():
        try:
            future.result()
        except Exception as exc:
            error = exc.args[0] if exc.args else None
            if not (
                isinstance(error, KafkaError) and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            ):
                raise
