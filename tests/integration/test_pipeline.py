"""Through the real broker: publish identify events, read the profiles topic back.

The expected profiles come from the pure rules applied in one process in publish order; the
pipeline sees the same events re-keyed, spread over partitions and processed by another process,
so agreement shows the Kafka wiring keeps the semantics.
"""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from streams import profile
from streams.events import from_json
from streams.routing import route
from streams.workload import WorkloadSpec, generate
from tests.factories import identify
from topology.avro import IDENTIFY_EVENT

pytestmark = pytest.mark.integration


def expected(messages):
    """(profiles rendered by the pure rules, rejection reasons) for a list of messages."""
    states: dict[str, dict] = {}
    reasons: Counter[str] = Counter()
    for _, value in messages:
        routed = route(value if isinstance(value, bytes) else IDENTIFY_EVENT.encode(value))
        reasons.update(r.reason for r in routed.rejections)
        if routed.event is not None:
            pid = routed.profile_id
            states[pid] = profile.fold(states.get(pid), from_json(routed.event), pid)
    rendered = {pid: _decoded(profile.render(state)) for pid, state in states.items()}
    return rendered, reasons


def _decoded(record):
    """The profile as a consumer decodes it, to compare like with like."""
    from topology.avro import PROFILE

    return PROFILE.decode(PROFILE.encode(record))


def test_events_become_profiles_and_rejections(deployment):
    messages = generate(WorkloadSpec(people=150, seed=11, junk_rate=0.03))
    deployment.start_worker()
    deployment.publish(messages)
    deployment.wait_processed()

    want_profiles, want_reasons = expected(messages)
    got = deployment.profiles()
    assert got == want_profiles
    assert Counter(r["reason"] for r in deployment.rejections()) == want_reasons
    undecodable = [r for r in deployment.rejections() if r["reason"] == "undecodable"]
    assert undecodable and all(r["rawValue"] for r in undecodable)


def test_every_fold_emits_the_whole_profile_keyed_by_profile_id(deployment):
    deployment.start_worker()
    deployment.publish(
        [
            ("k1", identify(ts=2, anon="dev-1", set={"city": "Rome"})),
            ("k2", identify(ts=1, anon="dev-1", set={"city": "Paris", "email": "a@b.io"})),
        ]
    )
    deployment.wait_processed()
    history = deployment.profile_history()
    assert len(history) == 2
    assert len({key for key, _, _ in history}) == 1
    final = history[-1][1]
    assert final["attributes"]["city"] == "Rome"  # the late, older event did not win
    assert final["attributes"]["email"] == "a@b.io"
    assert final["profileId"] == history[-1][0]


def test_restart_on_the_same_data_dir_keeps_state(deployment):
    first = generate(WorkloadSpec(people=80, seed=1, junk_rate=0))
    second = generate(WorkloadSpec(people=80, seed=2, junk_rate=0))
    deployment.start_worker()
    deployment.publish(first)
    deployment.wait_processed()
    deployment.workers["worker-1"].stop()
    tables = deployment.data_dir("worker-1") / "v1" / "tables"
    assert any(tables.glob("profile-state-*.db")), "state must be in RocksDB, not in memory"

    deployment.start_worker()  # same name, same data dir
    deployment.publish(second)
    deployment.wait_processed()
    assert deployment.profiles() == expected(first + second)[0]


def test_lost_data_dir_is_rebuilt_from_the_changelog(deployment):
    first = generate(WorkloadSpec(people=80, seed=3, junk_rate=0))
    deployment.start_worker()
    deployment.publish(first)
    deployment.wait_processed()
    deployment.workers["worker-1"].stop()
    shutil.rmtree(deployment.data_dir("worker-1"))

    # Touch every profile again: each new version must carry the state of before the loss.
    touch = [
        (key, identify(ts=2_000_000_000_000, **ids, set={"company": "Acme"}))
        for key, ids in _identities(first)
    ]
    worker = deployment.start_worker()
    deployment.publish(touch)
    deployment.wait_processed()
    assert "Restore complete" in worker.log_text()
    assert deployment.profiles() == expected(first + touch)[0]


def _identities(messages):
    """One (key, identifier kwargs) per profile of a workload, as a later event would name it."""
    seen = {}
    for key, value in messages:
        if isinstance(value, bytes):
            continue
        routed = route(IDENTIFY_EVENT.encode(value))
        if routed.event is None or routed.profile_id in seen:
            continue
        event = from_json(routed.event)
        ids = {"user": event.user_id} if event.user_id else {"anon": event.anonymous_id}
        seen[routed.profile_id] = (key, {**ids, "workspace": event.workspace_id})
    return list(seen.values())
