"""Earliest-value-wins on the real broker: 4 partitions, 2 workers, conflicting values."""

import pytest

from streams.tools.readback import read_all
from tests.factories import identify

pytestmark = pytest.mark.integration


def test_an_attribute_gets_one_type_across_partitions_and_workers(deployment):
    deployment.start_worker("worker-1")
    deployment.start_worker("worker-2")
    records = [
        (
            f"user-{n}",
            identify(ts=n, user=f"user-{n}", set={"custom": {"x": n if n % 2 else f"s{n}"}}),
        )
        for n in range(12)
    ]
    deployment.publish(records)
    deployment.wait_processed()

    input_partitions = {
        p for _, _, p in read_all(deployment.kafka_config, deployment.topology.identify_events.name)
    }
    assert len(input_partitions) > 1, "the conflicting values must start on different partitions"
    profiles = deployment.profiles()
    types = {
        type(p["attributes"]["custom"]["x"])
        for p in profiles.values()
        if "x" in p["attributes"]["custom"]
    }
    assert len(types) == 1
    (winner,) = types
    assert winner is str  # the earliest value (event time 0, "s0") decides, wherever it was read
    losers = {r["messageId"] for _, r in records if not isinstance(r["set"]["custom"]["x"], winner)}
    refused = [r for r in deployment.rejections() if r["reason"] == "type_mismatch"]
    # a decision log: every value not shown is refused (one refused under a decision that a
    # late, earlier value overturned stays refused too)
    assert losers <= {r["messageId"] for r in refused}
    assert all(r["subject"] == "custom.x" and not r["wholeMessage"] for r in refused)
    assert len(profiles) == 12  # every event applied, even those whose x was refused


def test_a_late_earlier_value_renders_published_profiles_again_under_their_ids(deployment):
    """The re-render path itself: profiles already out show a number, then an earlier string
    arrives; every profile holding the attribute goes out again, keyed by its profileId."""
    deployment.start_worker("worker-1")
    deployment.start_worker("worker-2")
    numbers = [
        (f"n{n}", identify(ts=1_000 + n, user=f"n{n}", set={"custom": {"plan": n}}))
        for n in range(8)
    ]
    deployment.publish(numbers)
    deployment.wait_processed()
    before = deployment.profiles()
    assert all(p["attributes"]["custom"].get("plan") is not None for p in before.values())

    deployment.publish([("early", identify(ts=1, user="early", set={"custom": {"plan": "gold"}}))])
    deployment.wait_processed()
    profiles = deployment.profiles()
    assert len(profiles) == 9  # one per person: none published again under another key
    assert all(key == p["profileId"] for key, p in profiles.items())
    shown = {p["userId"]: p["attributes"]["custom"].get("plan") for p in profiles.values()}
    assert shown == {"early": "gold", **{f"n{n}": None for n in range(8)}}
