"""`make bench-scale`: does throughput hold and memory stay flat as events and profiles grow?

One long run on the real broker: the whole workload is published up front, then the worker is
sampled every few seconds while it works through it: input consumed, profiles in its table (the
``identity_stream_table_keys`` gauge), peak RSS and RocksDB on disk. The throughput reported at
each checkpoint (10^4, 10^5, 10^6 events by default) is the rate over the stretch since the
previous checkpoint, so a slowdown shows where it happens instead of being averaged away.

State lives in RocksDB, not in Python: RSS should stay flat while the profile count grows.
Results go to ``benchmarks/results/scale.json`` and ``scale.png``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import urllib.request
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.charts import scale_chart
from benchmarks.run import RESULTS, dir_mib, peak_rss_mib, rss_mib
from streams.harness import Deployment, cluster
from streams.readback import lag
from streams.settings import Settings
from streams.workload import WorkloadSpec, generate
from topology.topics import PROFILE_TABLE


def _profiles(port: int) -> int:
    """The worker's own count of profile records (RocksDB's estimate, see streams.accounting)."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    pattern = rf'identity_stream_table_keys\{{table="{PROFILE_TABLE}"\}} ([0-9.e+]+)'
    found = re.search(pattern, text)
    return int(float(found.group(1))) if found else 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    spec = WorkloadSpec(
        people=args.people,
        anonymous_share=args.anonymous_share,
        max_devices=args.max_devices,
        visits_per_device=1,
        events_after_login=args.events_after_login,
        junk_rate=0.0,
        seed=args.seed,
    )
    print(f"generating {args.people:,} people ...")
    events = generate(spec)
    checkpoints = sorted(c for c in args.checkpoints if c <= len(events)) or [len(events)]
    if checkpoints[-1] != len(events):
        checkpoints.append(len(events))
    run_id = uuid.uuid4().hex[:8]
    samples: list[dict[str, float]] = []
    with ExitStack() as stack:
        settings = Settings.from_env().with_changes(
            bootstrap_servers=cluster(stack),
            app_id=f"scale-{run_id}",
            topic_prefix=f"scale-{run_id}.",
            partitions=args.partitions,
        )
        deployment = Deployment(settings, Path(".data") / f"scale-{run_id}").create_topics()
        stack.callback(deployment.destroy)
        worker = deployment.start_worker()
        print(f"publishing {len(events):,} events ...")
        deployment.publish(events, len(events), progress=True)
        del events
        input_topic = [deployment.topology.identify_events.name]
        started = time.monotonic()
        total = checkpoints[-1]
        while True:
            consumed = total - lag(deployment.kafka_config, settings.app_id, input_topic)
            samples.append(
                {
                    "seconds": round(time.monotonic() - started, 1),
                    "events": consumed,
                    "profiles": _profiles(worker.settings.web_port),
                    "rss_mib": round(rss_mib(worker.process.pid), 1),  # type: ignore[union-attr]
                    "rocksdb_mib": round(dir_mib(deployment.data_dir("worker-1")), 1),
                }
            )
            line = samples[-1]
            print(
                f"\r{line['seconds']:>7.0f} s  {consumed:>10,} events  "
                f"{line['profiles']:>10,} profiles  {line['rss_mib']:>7} MiB RSS",
                end="",
                flush=True,
            )
            if consumed >= total:
                break
            time.sleep(args.sample_s)
        print()
        peak = peak_rss_mib(worker.process.pid)  # type: ignore[union-attr]
    return {
        "workload": {**spec.__dict__, "events": total, "partitions": args.partitions},
        "checkpoints": _checkpoints(samples, checkpoints),
        "worker_peak_rss_mib": round(peak, 1),
        "samples": samples,
    }


def _checkpoints(samples: list[dict[str, float]], marks: list[int]) -> list[dict[str, Any]]:
    """At each mark: when it was passed, and the rate since the previous mark."""
    rows = []
    previous = {"seconds": 0.0, "events": 0}
    for mark in marks:
        reached = next(s for s in samples if s["events"] >= mark)
        span = reached["seconds"] - previous["seconds"]
        rate = (reached["events"] - previous["events"]) / span if span > 0 else float("nan")
        rows.append(
            {
                "events": mark,
                "seconds": reached["seconds"],
                "events_per_s_since_previous": round(rate, 1),
                "profiles": reached["profiles"],
                "rss_mib": reached["rss_mib"],
                "rocksdb_mib": reached["rocksdb_mib"],
            }
        )
        previous = reached
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make bench-scale", description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--anonymous-share", type=float, default=0.7)
    parser.add_argument("--max-devices", type=int, default=1)
    parser.add_argument("--events-after-login", type=int, default=0)
    parser.add_argument(
        "--checkpoints",
        type=lambda text: [int(float(n)) for n in text.split(",")],
        default=[10_000, 100_000, 1_000_000],
        help="comma-separated event counts",
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args(argv)
    results = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    chart = scale_chart(results, args.output.with_suffix(".png"))
    print(f"\n{'events':>10} {'events/s':>10} {'profiles':>10} {'RSS MiB':>8} {'RocksDB':>8}")
    for row in results["checkpoints"]:
        print(
            f"{row['events']:>10,} {row['events_per_s_since_previous']:>10,} "
            f"{row['profiles']:>10,} {row['rss_mib']:>8} {row['rocksdb_mib']:>8}"
        )
    print(f"\nwritten to {args.output} and {chart}")


if __name__ == "__main__":
    main()
