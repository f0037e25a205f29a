"""`make bench-scale`: does throughput hold and memory stay flat as events and profiles grow?

One long run on the real broker, fed in chunks: each chunk is published and the clock runs until
every stage has committed it (end to end, as in `make bench`; the wait for the last commit costs
each chunk a second or so). After each chunk the worker is sampled: RSS and RocksDB on disk, against
the number of profiles the events so far make. The throughput reported at each
checkpoint (10^4, 10^5, 10^6 events by default) is the rate since the previous checkpoint, so a
slowdown shows where it happens instead of being averaged away.

State lives in RocksDB, not in Python: RSS should stay flat while the profile count grows.
Results go to ``benchmarks/results/scale.json`` and ``scale.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.charts import scale_chart
from benchmarks.run import RESULTS, dir_mib, peak_rss_mib, rss_mib
from streams.tools.harness import Deployment, cluster
from streams.tools.publisher import Message
from streams.tools.workload import WorkloadSpec, generate


class ProfileCount:
    """How many profiles exist after the events seen so far: every user, and every device no
    one has logged in on yet. Exact for these workloads (no erasures, no junk), where RocksDB's
    key estimate also counts overwrites still in memtables."""

    def __init__(self) -> None:
        self._users: set[str] = set()
        self._devices: set[str] = set()
        self._claimed: set[str] = set()

    def add(self, messages: list[Message]) -> int:
        for _, record in messages:
            assert isinstance(record, dict)
            device, user = record.get("anonymousId"), record.get("userId")
            if user:
                self._users.add(user)
            if device:
                self._devices.add(device)
                if user:
                    self._claimed.add(device)
        return len(self._users) + len(self._devices - self._claimed)


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
    checkpoints = [*sorted(c for c in args.checkpoints if c < len(events)), len(events)]
    samples: list[dict[str, float]] = []
    with ExitStack() as stack:
        deployment = Deployment.of_its_own(cluster(stack), "scale", partitions=args.partitions)
        stack.callback(deployment.destroy)
        worker = deployment.start_worker()
        pid: int = worker.process.pid  # type: ignore[union-attr]
        print(f"{len(events):,} events in chunks of {args.chunk:,}")
        profiles = ProfileCount()
        busy = 0.0  # seconds from each chunk's first produce until every stage committed it
        for start in range(0, len(events), args.chunk):
            chunk = events[start : start + args.chunk]
            began = time.monotonic()
            deployment.publish(chunk, len(chunk))
            deployment.wait_processed(timeout=1800)
            busy += time.monotonic() - began
            samples.append(
                {
                    "seconds": round(busy, 2),
                    "events": start + len(chunk),
                    "profiles": profiles.add(chunk),
                    "rss_mib": round(rss_mib(pid), 1),
                    "rocksdb_mib": round(dir_mib(deployment.data_dir("worker-1")), 1),
                }
            )
            line = samples[-1]
            print(
                f"{line['seconds']:>8.0f} s {line['events']:>10,} events "
                f"{line['profiles']:>10,} profiles {line['rss_mib']:>7} MiB RSS",
                flush=True,
            )
        peak = peak_rss_mib(pid)
    return {
        "workload": {**spec.__dict__, "events": len(events), "partitions": args.partitions},
        "chunk": args.chunk,
        "checkpoints": _checkpoints(samples, checkpoints),
        "worker_peak_rss_mib": round(peak, 1),
        "samples": samples,
    }


def _checkpoints(samples: list[dict[str, float]], marks: list[int]) -> list[dict[str, Any]]:
    """At each mark: when it was passed, and the rate since the previous mark."""
    rows = []
    previous = {"seconds": 0.0, "events": 0}
    for mark in marks:
        reached = next(sample for sample in samples if sample["events"] >= mark)
        span = reached["seconds"] - previous["seconds"]
        rate = (reached["events"] - previous["events"]) / span if span > 0 else float("nan")
        rows.append(
            {
                "events": reached["events"],  # the first sample at or past the mark
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
    parser.add_argument("--chunk", type=int, default=10_000, help="events published at a time")
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
