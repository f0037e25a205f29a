"""`make bench`: throughput, latency, memory, disk and recovery of the pipeline, and its ceiling.

One run on the real broker (yours if KAFKA_BOOTSTRAP_SERVERS is set, else the local one):

1. throughput - a seeded workload is published at once; the clock runs from the first produce
   until every stage has committed everything (so every output is on its topic);
2. latency - probe identify calls (a new device logging in, the costliest path) are published
   one at a time while another workload is published at half the throughput just measured;
   latency is produce -> the probe's profile read from `profiles`;
3. memory and disk - the worker's peak RSS (VmHWM) and its RocksDB directory;
4. recovery - the profile table is grown to ``--recovery-profiles`` with copies of the run's
   own profiles (benchmarks.recovery), then the worker restarts on an empty data dir and
   rebuilds every table from the changelogs: records per second while restoring (the worker's
   counters) and seconds from process start until it serves;
5. ceiling - a plain confluent-kafka consume -> fastavro decode -> produce loop over the same
   input; our throughput is reported as a ratio of it;
6. hot profile - the stages in-process over 100,000 events of one user: events/s of its last
   events against fresh profiles', and its state's size (benchmarks.hot_profile).
7. gateway - hey's load on the HTTP gateway's WebEngage POST /users: requests/s and p99
   (benchmarks.gateway_load).

By default the run is made with one worker and again with two, on one broker warmed first
(``--warm-up``): a freshly started JVM compiles its hot paths for its first minute or so, on the
same two cores, and a latency step on a cold broker measured 180-370 ms p50 and 370-960 ms
p99 where the same step on a warm one measured 40-55 ms and 90-160 ms. Results go to
``benchmarks/results/latest.json`` and ``latest.png``, and are printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from benchmarks.ceiling import pass_through
from benchmarks.charts import bench_chart
from benchmarks.gateway_load import measure as measure_gateway
from benchmarks.gateway_load import summary as gateway_summary
from benchmarks.hot_profile import measure as measure_hot_profile
from benchmarks.recovery import grow_profiles
from streams.tools.harness import Deployment, cluster
from streams.tools.publisher import producer_config
from streams.tools.workload import WorkloadSpec, generate
from topology.admin import delete_topics, ensure_topics
from topology.avro import IDENTIFY_EVENT, PROFILE
from topology.topics import TopicSpec

RESULTS = Path("benchmarks/results")


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib(pid: int) -> float:
    return _status_mib(pid, "VmHWM")


def rss_mib(pid: int) -> float:
    return _status_mib(pid, "VmRSS")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a worker command's processes, streams.runtime.processes)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            todo += [int(child) for child in children.read_text().split()]
    return tree


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists():  # a process restarted meanwhile is not counted
            fields = stat.read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _topic_records(kafka_config: dict[str, str], topics: list[str]) -> int:
    consumer = Consumer({**kafka_config, "group.id": f"bench-{uuid.uuid4().hex}"})
    total = 0
    for topic in topics:
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
    consumer.close()
    return total


class ProfileTail:
    """Tails the profiles topic and notes when each probe user's profile first appears."""

    def __init__(self, kafka_config: dict[str, str], topic: str) -> None:
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                **kafka_config,
                "group.id": f"bench-tail-{uuid.uuid4().hex}",
                "auto.offset.reset": "latest",
            }
        )
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = []
        for p in partitions:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ends.append(TopicPartition(topic, p, high))
        self._consumer.assign(ends)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.05)
            if message is None or message.error() or message.value() is None:
                continue
            user = PROFILE.decode(message.value())["userId"] or ""
            if user.startswith("probe-"):
                self.seen.setdefault(user, time.monotonic())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def measure_latency(
    deployment: Deployment,
    probes: int,
    gap_s: float,
    load: list[tuple[str | None, Any]],
    rate: float,
) -> list[float]:
    """Produce -> profile on ``profiles`` of ``probes`` logins of new devices, one every
    ``gap_s``, while ``load`` is published at ``rate`` events/s. One producer, no linger: the
    clock starts when a probe is handed to it."""
    tail = ProfileTail(deployment.kafka_config, deployment.topology.profiles.name)
    topic = deployment.topology.identify_events.name
    producer = Producer({**producer_config(deployment.kafka_config), "linger.ms": 0})
    sent: dict[str, float] = {}
    probing = threading.Event()
    probing.set()

    def background() -> None:
        started = time.monotonic()
        for n, (key, value) in enumerate(load):
            if not probing.is_set():
                return
            delay = started + n / rate - time.monotonic()
            if delay > 0:  # one reading of the clock: two could make it negative
                time.sleep(delay)
            payload = value if isinstance(value, bytes) else IDENTIFY_EVENT.encode(value)
            producer.produce(topic, payload, key)
            producer.poll(0)

    loader = threading.Thread(target=background, daemon=True)
    try:
        loader.start()
        time.sleep(1.0)  # the load is flowing
        for n in range(probes):
            user = f"probe-{n}"
            record = {
                "messageId": f"probe-{uuid.uuid4().hex}",
                "timestamp": int(time.time() * 1000),
                "workspaceId": "bench",
                "anonymousId": f"probe-device-{n}",
                "userId": user,
                "set": {"email": f"{user}@example.com"},
            }
            sent[user] = time.monotonic()
            producer.produce(topic, IDENTIFY_EVENT.encode(record), user)
            producer.poll(0)
            time.sleep(gap_s)
        probing.clear()
        loader.join()
        producer.flush(60)
        deadline = time.monotonic() + 60
        while len(tail.seen) < probes and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        probing.clear()
        tail.close()
    return sorted((tail.seen[u] - sent[u]) * 1000 for u in sent if u in tail.seen)


def _workload(args: argparse.Namespace) -> WorkloadSpec:
    return WorkloadSpec(
        people=args.people,
        workspaces=args.workspaces,
        anonymous_share=args.anonymous_share,
        shared_device_rate=args.merge_conflict_rate,
        events_after_login=args.events_after_login,
        seed=args.seed,
    )


def warm_up(args: argparse.Namespace, bootstrap: str) -> None:
    """Make the broker do what the measured runs make it do, for ``args.warm_up`` seconds:
    a throwaway worker, a workload published at once, then another paced with probes among
    it, as the latency step does (one single-record produce request per event)."""
    if args.warm_up <= 0:
        return
    print(f"warm-up: a throwaway worker under the latency step's load for {args.warm_up:.0f} s ...")
    with ExitStack() as stack:
        deployment = Deployment.of_its_own(bootstrap, "bench-warm-up", partitions=args.partitions)
        stack.callback(deployment.destroy)
        deployment.start_worker("worker-1")
        events = generate(replace(_workload(args), seed=args.seed + 100))
        deployment.publish(events, len(events))
        deployment.wait_processed(timeout=600)
        load = generate(replace(_workload(args), people=args.people * 6, seed=args.seed + 101))
        probes = max(1, int(args.warm_up / args.probe_gap))
        measure_latency(deployment, probes, args.probe_gap, load, len(load) / args.warm_up)


def run(args: argparse.Namespace, bootstrap: str, worker_count: int) -> dict[str, Any]:
    spec = _workload(args)
    events = generate(spec)
    with ExitStack() as stack:
        deployment = Deployment.of_its_own(bootstrap, "bench", partitions=args.partitions)
        stack.callback(deployment.destroy)
        settings = deployment.settings
        worker = deployment.start_worker("worker-1", processes=worker_count)
        assert worker.process is not None
        processes = process_tree(worker.process.pid)
        print(
            f"throughput: {len(events)} events from {spec.people} people, "
            f"{worker_count} worker process(es)"
        )
        cpu_before = cpu_s(processes)
        started = time.monotonic()
        deployment.publish(events, len(events), progress=True)
        done_at: list[float] = []

        def note(left: int) -> None:
            if left == 0 and not done_at:
                done_at.append(time.monotonic())
            elif left:
                done_at.clear()

        deployment.wait_processed(timeout=1800, on_poll=note)
        elapsed = done_at[0] - started
        throughput = len(events) / elapsed
        cpu_ms_per_event = (cpu_s(processes) - cpu_before) * 1000 / len(events)

        rate = throughput / 2
        load = generate(replace(spec, seed=spec.seed + 1))
        print(f"latency: {args.probes} probes under a load of {rate:,.0f} events/s ...")
        latencies = measure_latency(deployment, args.probes, args.probe_gap, load, rate)
        deployment.wait_processed(timeout=600)
        rss = max(peak_rss_mib(pid) for pid in processes)
        rocksdb = dir_mib(deployment.data_dir("worker-1"))

        deployment.stop_workers()
        profiles = grow_profiles(
            deployment.kafka_config,
            settings.topology().profile_state_changelog.name,
            args.recovery_profiles,
        )
        print(f"recovery: one worker restarts on an empty data dir ({profiles:,} profiles) ...")
        shutil.rmtree(deployment.data_dir("worker-1"))
        changelogs = [t.name for t in settings.topology().all() if t.name.endswith("-changelog")]
        restored = _topic_records(deployment.kafka_config, changelogs)
        restart = time.monotonic()
        deployment.start_worker()
        recovery_s = time.monotonic() - restart
        counters = deployment.counters()  # the restore itself, without the process's start
        restore_rate = counters["restored_records"] / max(counters["restore_seconds"], 1e-3)

        print("ceiling: confluent-kafka consume -> fastavro decode -> produce ...")
        sink = TopicSpec(f"{settings.app_id}.ceiling-out", args.partitions, "", "", None)
        ensure_topics(deployment.kafka_config, [sink])
        stack.callback(delete_topics, deployment.kafka_config, [sink.name])
        ceiling = pass_through(
            deployment.kafka_config,
            deployment.topology.identify_events.name,
            sink.name,
            _topic_records(deployment.kafka_config, [deployment.topology.identify_events.name]),
        )

    return {
        "workload": {
            **spec.__dict__,
            "events": len(events),
            "partitions": args.partitions,
            "workers": worker_count,
        },
        "throughput_events_per_s": round(throughput, 1),
        "cpu_ms_per_event": round(cpu_ms_per_event, 3),  # all worker processes, while processing
        "end_to_end_s": round(elapsed, 2),
        "latency_ms": {
            "probes": len(latencies),
            "p50": round(statistics.median(latencies), 1) if latencies else None,
            "p99": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1)
            if latencies
            else None,
        },
        "worker_peak_rss_mib": round(rss, 1),  # the largest worker
        "rocksdb_mib": round(rocksdb, 2),
        "recovery": {
            "profiles": profiles,
            "changelog_records": restored,
            "seconds": round(recovery_s, 2),  # process start to serving, restore included
            "records_per_s": round(restored / recovery_s, 1),
            "restore_records_per_s": round(restore_rate, 1),  # while restoring
        },
        "ceiling_events_per_s": round(ceiling, 1),
        "ratio_to_ceiling": round(throughput / ceiling, 4),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--workspaces", type=int, default=2)
    parser.add_argument("--anonymous-share", type=float, default=0.3)
    parser.add_argument("--merge-conflict-rate", type=float, default=0.05)
    parser.add_argument("--events-after-login", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--workers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2],
        help="worker processes; a comma-separated list runs the benchmark once for each",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument(
        "--recovery-profiles",
        type=int,
        default=100_000,
        help="profiles in the table the recovery step restores (copies of the run's own)",
    )
    parser.add_argument("--probe-gap", type=float, default=0.1, help="seconds between probes")
    parser.add_argument(
        "--hot-events", type=int, default=100_000, help="events of one profile (hot-profile case)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument(
        "--warm-up",
        type=float,
        default=60.0,
        help="seconds of workload through a throwaway worker before anything is measured",
    )
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        bootstrap = cluster(stack)  # one broker for every run, stopped at the end if started
        warm_up(args, bootstrap)
        runs = [run(args, bootstrap, count) for count in args.workers]
    print(f"hot profile: {args.hot_events:,} events of one user, in-process ...")
    hot = measure_hot_profile(args.hot_events)
    print("gateway: hey against POST /users, 20 s at 32 connections ...")
    gateway = measure_gateway()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    results = {"runs": runs, "hot_profile": hot, "gateway": gateway}
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    chart = bench_chart(runs, args.output.with_suffix(".png"))
    rows = [
        ("worker processes", lambda r: r["workload"]["workers"]),
        ("events", lambda r: f"{r['workload']['events']:,}"),
        ("end-to-end throughput", lambda r: f"{r['throughput_events_per_s']:,} events/s"),
        ("pass-through ceiling", lambda r: f"{r['ceiling_events_per_s']:,} events/s"),
        ("ratio to ceiling", lambda r: f"{r['ratio_to_ceiling']:.1%}"),
        (
            "latency p50 / p99",
            lambda r: f"{r['latency_ms']['p50']} / {r['latency_ms']['p99']} ms",
        ),
        ("CPU per event", lambda r: f"{r['cpu_ms_per_event']} ms"),
        ("worker peak RSS", lambda r: f"{r['worker_peak_rss_mib']} MiB"),
        ("RocksDB on disk", lambda r: f"{r['rocksdb_mib']} MiB"),
        (
            "restore from changelogs",
            lambda r: f"{r['recovery']['restore_records_per_s']:,} records/s",
        ),
        (
            "lost data dir: serving",
            lambda r: f"{r['recovery']['seconds']} s, {r['recovery']['profiles']:,} profiles",
        ),
    ]
    print()
    for name, cell in rows:
        print(f"{name:<24}" + "".join(f"{cell(r)!s:<26}" for r in runs))
    last, fresh = hot["hot_profile_last_events_per_s"], hot["fresh_profile_events_per_s"]
    print(
        f"{'hot profile':<24}its {hot['events']:,}th event at {last:,} events/s, fresh profiles "
        f"{fresh:,} (ratio {hot['ratio_last_to_fresh']:.2f}); state {hot['state_bytes_after']:,} B"
    )
    print(f"{'HTTP gateway':<24}{gateway_summary(gateway)}")
    print(f"\nwritten to {args.output} and {chart}")


if __name__ == "__main__":
    main()
