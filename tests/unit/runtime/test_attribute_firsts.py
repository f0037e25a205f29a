"""The attribute-firsts reader rides out a broker's restart instead of exiting the worker."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streams.rules.attribute_types import AttributeTypes, Catalog
from streams.runtime import attribute_firsts
from streams.runtime.attribute_firsts import AttributeFirsts


class Restarting:
    """A consumer whose broker answers ``error`` ``failures`` times, then the ends."""

    def __init__(self, error: int, failures: int) -> None:
        self.error, self.failures, self.asked = error, failures, 0

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        self.asked += 1
        if self.asked <= self.failures:
            raise KafkaException(KafkaError(self.error))
        return 0, 10 + tp.partition


def _reader() -> AttributeFirsts:
    return AttributeFirsts({}, "firsts", AttributeTypes(Catalog(), 25), lambda changed: None)


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attribute_firsts, "ENDS_RETRY_S", 0.0)


def test_a_partition_without_a_leader_for_a_while_is_asked_again() -> None:
    consumer = Restarting(KafkaError.NOT_LEADER_FOR_PARTITION, failures=3)
    tps = [TopicPartition("firsts", p) for p in range(2)]
    assert _reader()._ends(consumer, tps) == {0: 10, 1: 11}  # type: ignore[arg-type]


def test_a_lasting_or_another_failure_still_stops_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tps = [TopicPartition("firsts", 0)]
    with pytest.raises(KafkaException):
        _reader()._ends(Restarting(KafkaError.TOPIC_AUTHORIZATION_FAILED, 1), tps)  # type: ignore[arg-type]
    monkeypatch.setattr(attribute_firsts, "ENDS_PATIENCE_S", 0.0)
    with pytest.raises(KafkaException):
        _reader()._ends(Restarting(KafkaError.NOT_LEADER_FOR_PARTITION, 10**6), tps)  # type: ignore[arg-type]
