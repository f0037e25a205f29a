"""Through the real broker: publish identify events, read the output topics back.

The expected outputs come from the same stages run in-process by ``tests.simulation`` (whose
results the unit tests prove independent of arrival order and partitioning, and equal to the
definition). The pipeline sees the same events spread over partitions, repartition topics,
worker processes and restarts, so agreement shows the Kafka wiring keeps the semantics.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from rocksdict import AccessType, Rdict

from streams.rules.identity import IdKind, derive_profile_id
from streams.tools.readback import lag
from streams.tools.workload import WorkloadSpec, generate
from tests.factories import identify
from tests.simulation import simulate
from topology.stages import ANONYMOUS_IDS, PROFILE_STATE, TABLES

pytestmark = pytest.mark.integration


def refusals(rejections):
    """Rejections as a set: at-least-once delivery may repeat one after a crash, never lose one."""
    return {(r["reason"], r["messageId"], r["subject"]) for r in rejections}


def links(merges):
    """What a merge decides, without what depends on arrival order (snapshot, previous owner)."""
    fields = ("anonymousId", "intoProfileId", "userId", "eventTime", "causeMessageId")
    return {key: tuple(m[f] for f in fields) for key, m in merges.items()}


def assert_matches_model(deployment, messages):
    want = simulate(messages)
    got = deployment.profiles()
    if got != want.profiles:  # a post-mortem: how they differ, and the history of a few
        pytest.fail("\n".join(deployment.explain(got, want.profiles)), pytrace=False)
    assert links(deployment.merges()) == links(want.merges)
    assert refusals(deployment.rejections()) == refusals(want.rejections)


def test_events_become_profiles_merges_and_rejections(deployment):
    messages = generate(WorkloadSpec(people=150, seed=11, junk_rate=0.03))
    deployment.start_worker()
    deployment.publish(messages)
    deployment.wait_processed()
    assert_matches_model(deployment, messages)
    undecodable = [r for r in deployment.rejections() if r["reason"] == "undecodable"]
    assert undecodable
    assert all(r["rawValue"] for r in undecodable)


def test_every_change_emits_the_whole_profile_keyed_by_profile_id(deployment):
    deployment.start_worker()
    # Changes to one profile within one batch are coalesced (outcomes.coalesce): one per batch.
    deployment.publish([("k1", identify(ts=2, user="u-1", set={"city": "Rome"}))])
    deployment.wait_processed()
    older = identify(ts=1, user="u-1", set={"city": "Paris", "email": "a@b.io"})
    deployment.publish([("k2", older)])
    deployment.wait_processed()
    history = deployment.profile_history()
    pid = derive_profile_id("ws", IdKind.USER, "u-1")
    assert [key for key, _, _ in history] == [pid, pid]
    final = history[-1][1]
    assert final["attributes"]["city"] == "Rome"  # the late, older event did not win
    assert final["attributes"]["email"] == "a@b.io"


def test_merged_away_profile_is_a_tombstone(deployment):
    deployment.start_worker()
    deployment.publish([("a", identify(ts=1, anon="dev-9", set={"city": "Oslo"}))])
    deployment.wait_processed()
    deployment.publish([("u", identify(ts=2, anon="dev-9", user="u-9"))])
    deployment.wait_processed()
    anonymous = derive_profile_id("ws", IdKind.ANONYMOUS, "dev-9")
    history = [(key, value) for key, value, _ in deployment.profile_history() if key == anonymous]
    assert history[-1] == (anonymous, None)
    assert anonymous not in deployment.profiles()


def test_restart_on_the_same_data_dir_keeps_state(deployment):
    """Stopped while it works, a worker leaves its tables holding every write it sent to their
    changelogs: its last flush comes before faust closes them, and a restart restores nothing."""
    first = generate(WorkloadSpec(people=600, seed=1, junk_rate=0))
    second = generate(WorkloadSpec(people=80, seed=2, junk_rate=0))
    deployment.start_worker()
    deployment.publish(first)
    deadline = time.monotonic() + 60
    while not deployment.profiles():  # under way: the stop finds writes not yet flushed
        assert time.monotonic() < deadline, "no profile within a minute"
        time.sleep(0.05)
    deployment.workers["worker-1"].stop()
    tables = deployment.data_dir("worker-1") / "v1" / "tables"
    assert any(tables.glob("profile-state-*.db")), "state must be in RocksDB, not in memory"
    assert _persisted_offsets(tables) == _changelog_ends(deployment), (
        "each table partition must know where its changelog ends: recovery resumes there"
    )

    deployment.start_worker()  # same name, same data dir
    deployment.publish(second)
    deployment.wait_processed()
    assert_matches_model(deployment, first + second)


def _persisted_offsets(tables):
    """(table, partition) -> the changelog offset its RocksDB says it holds, as faust stores it."""
    found = {}
    for path in tables.glob("*.db"):
        table, partition = path.stem.rsplit("-", 1)
        db = Rdict(str(path), access_type=AccessType.read_only())
        try:
            stored = db.get(b"__faust\0offset__")
        finally:
            db.close()
        if stored is not None:
            found[(table, int(partition))] = int(stored)
    return found


def _changelog_ends(deployment):
    """(table, partition) -> the offset of the last record of its changelog, where there is one."""
    admin = AdminClient(deployment.kafka_config)
    consumer = Consumer({**deployment.kafka_config, "group.id": "changelog-ends"})
    ends = {}
    try:
        for spec in TABLES:
            topic = deployment.topology.changelog(spec.name).name
            for partition in admin.list_topics(topic, timeout=10).topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
                if high > 0:
                    ends[(spec.name, partition)] = high - 1
    finally:
        consumer.close()
    return ends


def test_lost_data_dir_is_rebuilt_from_the_changelog(deployment):
    first = generate(WorkloadSpec(people=80, seed=3, junk_rate=0))
    deployment.start_worker()
    deployment.publish(first)
    deployment.wait_processed()
    deployment.workers["worker-1"].stop()
    shutil.rmtree(deployment.data_dir("worker-1"))

    # Touch every profile again: each new version must carry the state of before the loss.
    touch = [
        (key, {**value, "messageId": f"touch-{n}", "timestamp": value["timestamp"] + 10**9})
        for n, (key, value) in enumerate(first)
        if isinstance(value, dict)
    ]
    worker = deployment.start_worker()
    deployment.publish(touch)
    deployment.wait_processed()
    assert "Restore complete" in worker.log_text()
    assert_matches_model(deployment, first + touch)


def test_two_workers_and_a_sigkill_give_the_result_of_a_clean_run(deployment):
    """4 partitions, 2 worker processes; one is SIGKILLed mid-stream and restarted."""
    messages = generate(WorkloadSpec(people=400, seed=5, junk_rate=0.02, shared_device_rate=0.1))
    half = len(messages) // 2
    deployment.start_worker("worker-1")
    deployment.start_worker("worker-2")
    deployment.publish(messages[:half])
    _wait_until_partly_processed(deployment)
    deployment.publish(messages[half:])
    deployment.workers["worker-2"].kill()  # while the second half is on its way
    deployment.start_worker("worker-2")  # same data dir, as a supervisor would restart it
    deployment.wait_processed()
    assert_matches_model(deployment, messages)
    assert any(r["reason"] == "merge_refused" for r in deployment.rejections())


def test_one_worker_command_runs_a_process_per_core_and_restarts_a_lost_one(deployment):
    """IDENTITY_STREAM_PROCESSES=2: two group members, each with its own data dir and port; one
    SIGKILLed is restarted by the command, and the result is a clean run's."""
    messages = generate(WorkloadSpec(people=200, seed=8, junk_rate=0.02))
    half = len(messages) // 2
    worker = deployment.start_worker(processes=2)
    deployment.publish(messages[:half])
    deployment.wait_processed()
    root = deployment.data_dir("worker-1")
    for n in (0, 1):  # both members were given table partitions
        assert any((root / f"process-{n}" / "v1" / "tables").glob("profile-state-*.db"))
    assert len(worker.ports()) == 2 and deployment.counters()["in"] > 0  # both answer

    children = _children(worker.process.pid)
    assert len(children) == 2
    os.kill(children[1], signal.SIGKILL)
    deployment.publish(messages[half:])
    deployment.wait_processed()
    assert_matches_model(deployment, messages)
    assert "restarting it" in worker.log_text()
    assert len(_children(worker.process.pid)) == 2

    worker.stop()  # SIGTERM to the command stops every process cleanly
    assert worker.process.returncode == 0
    assert _children(worker.process.pid) == []


def test_a_result_that_differs_from_the_model_is_explained_by_its_history(deployment):
    """The post-mortem a failing crash test prints: the differing profile's commands, states,
    devices and publications, and the workers' changes of hands."""
    messages = generate(WorkloadSpec(people=30, seed=3, shared_device_rate=0.2))
    deployment.start_worker()
    deployment.publish(messages)
    deployment.wait_processed()
    want = copy.deepcopy(simulate(messages).profiles)
    pid = min(k for k, p in want.items() if p["userId"] and p["anonymousIds"])
    want[pid]["anonymousIds"] = [*want[pid]["anonymousIds"], "anon-never-seen"]
    lines = deployment.explain(deployment.profiles(), want)
    assert lines[0] == f"of {len(want)} profiles, 1 differ, 0 are missing and 0 unexpected"
    assert lines[1] == f"profile {pid} differs in anonymousIds:"
    text = "\n".join(lines)
    topology = deployment.topology
    for topic, what in (
        (topology.changelog(PROFILE_STATE.name).name, f" {pid} at="),
        (topology.events_by_profile.name, f" {pid} attach member="),
        (topology.changelog(ANONYMOUS_IDS.name).name, " owner="),
        (topology.profiles.name, f" {pid} +"),
    ):
        assert any(line.startswith(f"{topic}[") and what in line for line in lines), topic
    assert "Joined group" in text


def _children(pid):
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _wait_until_partly_processed(deployment, timeout=60.0):
    """Until the workers are busy: some input committed (all of it, on a fast machine)."""
    topics = [deployment.topology.identify_events.name]
    total = lag(deployment.kafka_config, deployment.settings.app_id, topics)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lag(deployment.kafka_config, deployment.settings.app_id, topics) < total:
            return
        time.sleep(0.05)
    raise AssertionError("the workers never got going")
