"""The command line, run as a user runs it, against a real worker."""

import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest

from streams.tools.readback import latest_by_key
from streams.tools.workload import WorkloadSpec, generate
from tests.factories import identify
from tests.unit.rules.test_mapping import HEROGI, NOTIFYVISITORS, WEBENGAGE

pytestmark = pytest.mark.integration


def cli(deployment, *args):
    env = {**os.environ, **deployment.settings.to_env()}
    return subprocess.run(
        [sys.executable, "-m", "streams.tools.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_publish_files_then_read_profiles(deployment, tmp_path):
    deployment.start_worker()
    users = tmp_path / "users.jsonl"
    lines = [WEBENGAGE, HEROGI, NOTIFYVISITORS, {"email": "nobody@example.com"}]
    users.write_text("\n".join(json.dumps(line) for line in lines) + "\n")

    first = cli(deployment, "publish", str(users), "--workspace", "acme", "--wait", "120")
    assert first.returncode == 0, first.stderr
    assert "published 3 identify events" in first.stdout
    assert "users.jsonl:4: skipped: needs an anonymousId" in first.stderr
    assert "0 rejected" in first.stdout

    again = cli(deployment, "publish", str(users), "--workspace", "acme", "--wait", "120")
    assert again.returncode == 0, again.stderr
    assert deployment.counters()["duplicate"] == 3  # the same file twice: applied once

    shown = cli(deployment, "profiles", "--limit", "10")
    profiles = [json.loads(line) for line in shown.stdout.splitlines()]
    assert sorted(p["userId"] for p in profiles) == sorted(
        ["johndoe", "johnwick@example.com", "michael@example.com"]
    )
    assert cli(deployment, "publish", "--help").returncode == 0
    url = f"http://127.0.0.1:{deployment.workers['worker-1'].settings.web_port}/counters/"
    shown = json.loads(cli(deployment, "counters", "--url", url).stdout)
    assert shown["duplicate"] == 3


def test_json_logs(deployment):
    deployment.settings = deployment.settings.with_changes(log_format="json")
    worker = deployment.start_worker()
    lines = [line for line in worker.log_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any("Ready" in r["message"] for r in records)
    assert {"time", "level", "logger", "message"} <= set(records[0])


def test_replay_twice_compares_equal(deployment):
    messages = generate(WorkloadSpec(people=60, seed=21))
    deployment.start_worker()
    deployment.publish(messages[:200])
    time.sleep(1.5)
    midway = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=0.5)
    deployment.publish(messages[200:])
    deployment.wait_processed()
    deployment.stop_workers()
    prefix = deployment.settings.topic_prefix

    for version in ("v1", "v2"):
        replayed = cli(deployment, "replay", version)
        assert replayed.returncode == 0, replayed.stderr
    same = cli(deployment, "compare", prefix, f"{prefix}v1.")
    assert same.returncode == 0, same.stdout + same.stderr
    assert cli(deployment, "compare", f"{prefix}v1.", f"{prefix}v2.").returncode == 0

    late = cli(deployment, "replay", "late", "--since", midway.isoformat())  # Kafka time
    assert late.returncode == 0, late.stderr
    differs = cli(deployment, "compare", prefix, f"{prefix}late.")
    assert differs.returncode == 1
    assert "differ" in differs.stdout


def test_replays_type_custom_attributes_like_the_live_run(deployment):
    """The issue's race: numbers arrive first, an earlier string last; 26 number attributes race
    for 25 slots, arriving in another order than their event times, on 4 partitions. Live and
    replayed twice: the same types, the same admitted attributes, the same profiles. Two live
    workers: a decision may change on one while the profile lives on the other."""
    plans = [
        (user, identify(ts=ts, user=user, set={"custom": {"plan": n}}))
        for n, (user, ts) in enumerate([("a", 10_000), ("b", 20_000), ("c", 25_000)])
    ]
    gold = ("d", identify(ts=5_000, user="d", set={"custom": {"plan": "gold"}}))
    numbers = [
        (f"n{i}", identify(ts=100_000 - i * 1000, user=f"n{i}", set={"custom": {f"num{i}": i}}))
        for i in range(26)
    ]  # published num0 first, yet num0 has the latest value: it is the one left out
    deployment.start_worker("worker-1")
    deployment.start_worker("worker-2")
    deployment.publish([*plans, *numbers, gold])
    deployment.wait_processed()
    deployment.stop_workers()
    shown = {p["userId"]: p["attributes"]["custom"] for p in deployment.profiles().values()}
    assert {u: shown[u].get("plan") for u in "abcd"} == {
        "a": None,
        "b": None,
        "c": None,
        "d": "gold",
    }
    assert "num0" not in shown["n0"] and all(f"num{i}" in shown[f"n{i}"] for i in range(1, 26))

    prefix = deployment.settings.topic_prefix
    for version in ("v1", "v2"):
        assert cli(deployment, "replay", version).returncode == 0
    for a, b in ((prefix, f"{prefix}v1."), (f"{prefix}v1.", f"{prefix}v2.")):
        same = cli(deployment, "compare", a, b)
        assert same.returncode == 0, same.stdout + same.stderr
        assert "attribute types equal" in same.stdout


def test_an_erased_person_stays_erased_after_a_rebuild(deployment):
    person = [
        identify(ts=1, anon="dev-e", set={"city": "Oslo"}),
        identify(ts=2, anon="dev-e", user="gone", set={"email": "gone@example.com"}),
        identify(ts=3, user="stays", set={"city": "Rome"}),
    ]
    forget = {**identify(ts=10, user="gone"), "erase": True}
    deployment.start_worker()
    deployment.publish([(r["userId"] or r["anonymousId"], r) for r in person])
    deployment.wait_processed()
    deployment.publish(
        [("gone", forget), ("late", identify(ts=5, anon="dev-e", set={"city": "x"}))]
    )
    deployment.wait_processed()
    assert [p["userId"] for p in deployment.profiles().values()] == ["stays"]
    assert deployment.merges() == {}
    t = deployment.topology
    left = set()  # the messageIds the records remember to drop retries (rules.deduplication)
    for changelog in (t.anonymous_ids_changelog, t.profile_state_changelog):
        for value in latest_by_key(deployment.kafka_config, changelog.name, bytes).values():
            record = json.loads(value) if value else None
            if isinstance(record, dict):
                left |= {entry[1] for entry in record.get("messages", ())}
    assert left == {person[2]["messageId"], forget["messageId"]}  # "late" is the person's too
    deployment.stop_workers()

    prefix = deployment.settings.topic_prefix
    assert cli(deployment, "replay", "rebuilt").returncode == 0
    assert cli(deployment, "compare", prefix, f"{prefix}rebuilt.").returncode == 0


def test_a_blocked_person_stays_out_and_their_later_events_are_refused(deployment):
    deployment.settings = deployment.settings.with_changes(after_erasure="block")
    deployment.start_worker()
    person = [
        identify(ts=1, anon="dev-b", user="blocked", set={"city": "Oslo"}),
        identify(ts=2, user="open", set={"city": "Rome"}),
        {**identify(ts=10, user="blocked"), "erase": True},
    ]
    deployment.publish([(r["userId"], r) for r in person])
    deployment.wait_processed()
    later = [
        identify(ts=20, user="blocked", set={"city": "Bergen"}, message_id="again"),
        identify(ts=21, anon="dev-b", set={"city": "Bergen"}, message_id="device-again"),
    ]
    deployment.publish([(r["messageId"], r) for r in later])
    deployment.wait_processed()
    assert [p["userId"] for p in deployment.profiles().values()] == ["open"]
    refused = {(r["messageId"], r["subject"], r["reason"]) for r in deployment.rejections()}
    # The login may be refused too: its user's part takes one hop more than the erasure.
    assert {("again", "userId", "erased"), ("device-again", "anonymousId", "erased")} <= refused
    assert {reason for _, _, reason in refused} == {"erased"}
