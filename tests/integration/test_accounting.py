"""Every input message is accounted for: in = applied (+ warning) + duplicate + rejected."""

import random
import urllib.request

import pytest

from streams.rules.outcomes import Source
from streams.rules.routing import route
from streams.tools.workload import WorkloadSpec, generate
from tests.factories import identify
from topology.avro import IDENTIFY_EVENT
from topology.stages import ANONYMOUS_IDS, PROFILE_STATE

pytestmark = pytest.mark.integration


def fuzzed(seed: int, count: int):
    """Good events, garbage bytes and events with every kind of bad part, shuffled."""
    rng = random.Random(seed)
    good = generate(WorkloadSpec(people=60, seed=seed, junk_rate=0.05))
    bad_parts = [
        {"user": "guest"},
        {"user": " ", "anon": ""},
        {"user": "u-x", "set": {"email": "nope", "country": "EN"}},
        {"anon": "d-x", "set": {"custom": {"we_secret": 1, "x" * 60: 2}}},
        {"user": "u-y", "set": {"custom": {"bio": "b" * 2000}}},
        {"user": "u-z", "set": {"custom": {"n": "not a number"}}},
        {"user": "u-z", "set": {"custom": {"n": 1.5}}},
        {"user": "u-w", "workspace": " "},
    ]
    messages = list(good)
    for n in range(count):
        if rng.random() < 0.3:
            messages.append((None, rng.randbytes(rng.randint(0, 40))))
        else:
            messages.append((f"k{n}", identify(ts=n, **rng.choice(bad_parts))))
    messages += rng.sample(messages, 40)  # retried calls: the same bytes published again
    rng.shuffle(messages)
    return messages


def dedupe_key(value):
    """Retries are found by the record their event goes to (rules.deduplication); a message
    without an event is rejected, every time."""
    raw = value if isinstance(value, bytes) else IDENTIFY_EVENT.encode(value)
    routed = route(raw, Source("t", 0, 0), 0)
    if routed.event is None:
        return None
    (forward,) = routed.emits
    return forward.key, routed.event.message_id


def test_every_message_ends_applied_or_rejected(deployment):
    messages = fuzzed(seed=3, count=300)
    deployment.start_worker("worker-1")
    deployment.start_worker("worker-2")
    deployment.publish(messages)
    deployment.wait_processed()

    counters = deployment.counters()
    assert counters["in"] == len(messages)
    outcomes = ("applied", "applied_with_warning", "duplicate", "rejected")
    assert counters["in"] == sum(counters[o] for o in outcomes)
    keys = [dedupe_key(value) for _, value in messages]
    repeats = sum(1 for n, key in enumerate(keys) if key is not None and key in keys[:n])
    assert counters["duplicate"] == repeats > 0
    whole = [r for r in deployment.rejections() if r["wholeMessage"]]
    assert counters["rejected"] == len(whole) == sum(counters["rejected_by_reason"].values())
    partial = [r for r in deployment.rejections() if not r["wholeMessage"]]
    assert sum(counters["warnings_by_reason"].values()) == len(partial)
    assert counters["applied"] > 0
    assert counters["applied_with_warning"] > 0
    worker = deployment.workers["worker-1"]
    url = f"http://127.0.0.1:{worker.settings.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        metrics = response.read().decode()
    assert 'identity_stream_events_total{outcome="in"}' in metrics
    assert "identity_stream_input_lag_seconds_bucket" in metrics
    assert f'identity_stream_table_bytes{{table="{PROFILE_STATE.name}"}}' in metrics
    assert counters["tables"][PROFILE_STATE.name] > 0 and counters["tables"][ANONYMOUS_IDS.name] > 0
    assert {"undecodable", "missing_identity", "missing_workspace"} <= set(
        counters["rejected_by_reason"]
    )
