from streams.rules.deduplication import DEFAULT_WINDOW_MS, message_key, on_message, pack
from streams.rules.outcomes import REJECTIONS, Emit, Source
from tests.factories import identify
from tests.simulation import simulate

FIRST = Source("in", 0, 10)


def batch(ts, source=FIRST):
    return pack([Emit(REJECTIONS, "m", {"reason": "x"})], ts, source)


def test_a_retry_within_the_window_is_a_duplicate():
    seen, emits = on_message(None, "k", batch(1_000))
    assert emits
    _, again = on_message(seen, "k", batch(1_000 + DEFAULT_WINDOW_MS, Source("in", 3, 99)))
    assert again == []


def test_outside_the_window_the_id_counts_again():
    seen, _ = on_message(None, "k", batch(1_000))
    _, emits = on_message(seen, "k", batch(1_001 + DEFAULT_WINDOW_MS, Source("in", 3, 99)))
    assert emits


def test_a_redelivery_of_the_same_kafka_message_is_released_again():
    seen, first = on_message(None, "k", batch(1_000))
    _, second = on_message(seen, "k", batch(1_000))  # same topic, partition, offset
    assert second == first


def test_keys_separate_workspaces():
    assert message_key("a", "m1") != message_key("b", "m1")


def test_a_retried_call_is_applied_once_end_to_end():
    first = identify(ts=1, user="u", set={"city": "Oslo"}, message_id="req-1")
    retry = {**first, "set": {**first["set"], "city": "Rome"}}  # same x-request-id, other body
    out = simulate([("u", first), ("u", retry), ("u", {**first, "userId": "null"})], partitions=1)
    (profile,) = out.profiles.values()
    assert profile["attributes"]["city"] == "Oslo"
    assert out.rejections == []  # the retried junk-id copy is a duplicate: not even refused
