"""Where a probe's latency goes: produce -> profile, and each hop, under a steady load.

``make bench`` reports produce -> profile only. This runs one worker, publishes a steady load
(a generated workload, as ``make bench`` does) with probe logins among it, then reads back the
Kafka timestamps of the record each hop produced for each probe: the route stage's envelope on
the by-anonymous topic, the link stage's on the by-profile topic, the assemble stage's profile.
A producer stamps a record when it is handed over, so each difference is one hop: its fetch,
its batch, its step and the delivery of the previous hop's batch.

    .venv/bin/python -m benchmarks.hops --rate 1000
    .venv/bin/python -m benchmarks.hops --rate 1300 --history   # as make bench's latency step

Keep the broker running between runs (``make broker-start``): a freshly started broker is far
slower for its first minute (JIT), which is not the worker's latency.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack
from typing import Any

import orjson
from confluent_kafka import Message

from benchmarks.run import measure_latency
from streams.rules.identity import IdKind, derive_profile_id
from streams.tools.harness import Deployment, cluster
from streams.tools.readback import messages
from streams.tools.workload import WorkloadSpec, generate

PROBE_WORKSPACE = "bench"  # as benchmarks.run's probes


def _first_by_probe(records: list[Message]) -> dict[str, int]:
    """When the first envelope record carrying each probe's event was produced."""
    first: dict[str, int] = {}
    for record in records:
        stamp = record.timestamp()[1]
        for _, payload in orjson.loads(record.value()):
            event: dict[str, Any] | None = (
                payload.get("event") if isinstance(payload, dict) else None
            )
            user = (event or {}).get("userId") or ""
            if user.startswith("probe-"):
                first.setdefault(user, stamp)
    return first


def _summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50": statistics.median(values),
        "p90": values[int(0.9 * (len(values) - 1))],
        "max": values[-1],
    }


def measure(
    rate: float, probes: int, gap_s: float, people: int, warmup_s: float, history: bool
) -> dict[str, Any]:
    with ExitStack() as stack:
        deployment = Deployment.of_its_own(cluster(stack), "hops")
        stack.callback(deployment.destroy)
        deployment.start_worker("worker-1")
        load = generate(WorkloadSpec(people=people, workspaces=2, seed=8))
        if history:  # as make bench's latency step, which follows its throughput step
            events = generate(WorkloadSpec(people=people, workspaces=2, seed=7))
            deployment.publish(events, len(events))
            deployment.wait_processed(timeout=600)
        else:  # a worker's first seconds (group settling, first fetches) are not its latency
            time.sleep(warmup_s)
        latencies = measure_latency(deployment, probes, gap_s, load, rate)
        deployment.wait_processed(timeout=600)
        topology, config = deployment.topology, deployment.kafka_config
        sent = {
            record.key().decode(): record.timestamp()[1]
            for record in messages(config, topology.identify_events.name)
            if (record.key() or b"").startswith(b"probe-")
        }
        routed = _first_by_probe(messages(config, topology.events_by_anonymous.name))
        linked = _first_by_probe(messages(config, topology.events_by_profile.name))
        published: dict[str, int] = {}
        for record in messages(config, topology.profiles.name):
            if record.key():
                published.setdefault(record.key().decode(), record.timestamp()[1])
        hops: dict[str, list[float]] = {"route": [], "link": [], "assemble": []}
        for user, start in sent.items():
            profile = derive_profile_id(PROBE_WORKSPACE, IdKind.USER, user)
            if user in routed and user in linked and profile in published:
                hops["route"].append(routed[user] - start)
                hops["link"].append(linked[user] - routed[user])
                hops["assemble"].append(published[profile] - linked[user])
        return {
            "rate_events_per_s": rate,
            "probes": len(latencies),
            "produce_to_profile_ms": {
                "p50": statistics.median(latencies),
                "p99": latencies[int(0.99 * (len(latencies) - 1))],
            },
            "hops_ms": {name: _summary(values) for name, values in hops.items() if values},
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000, help="background load, events/s")
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--probe-gap", type=float, default=0.1)
    parser.add_argument("--people", type=int, default=1000, help="of the background workload")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds the worker idles first")
    parser.add_argument(
        "--history",
        action="store_true",
        help="instead of idling, first process make bench's throughput workload (seed 7)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = measure(args.rate, args.probes, args.probe_gap, args.people, args.warmup, args.history)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
