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
