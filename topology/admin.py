"""Create the declared topics idempotently, with confluent-kafka's admin client.

Creating them up front (rather than letting a client auto-create) is what gives the compacted
profiles topic its cleanup policy and the input its retention; an existing topic with a different
partition count is an error, since re-keyed data would land on the wrong partitions.
"""

from __future__ import annotations

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
    metadata = admin.list_topics(timeout=timeout)
    for spec in wanted:
        topic = metadata.topics.get(spec.name)
        have = len(topic.partitions) if topic is not None else 0
        if have != spec.partitions:
            raise TopologyMismatch(
                f"topic {spec.name} has {have} partitions, the topology declares {spec.partitions}"
            )
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
