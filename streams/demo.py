"""`make demo`: from nothing to printed profiles, through the real pipeline, then clean up.

It runs a real broker (yours if KAFKA_BOOTSTRAP_SERVERS is set, else the local one), a real worker
process, and a generated stream of a few thousand identify events; then reads the profiles back
from the profiles topic. Everything it started or created, it stops or deletes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import localkafka
from tqdm import tqdm

from streams.publisher import publish
from streams.readback import latest_by_key, read_all, wait_caught_up
from streams.settings import Settings
from streams.supervisor import WorkerProcess
from streams.workload import WorkloadSpec, generate
from topology.admin import delete_topics, ensure_topics
from topology.avro import PROFILE, REJECTION
from topology.topics import declare


def _bootstrap(stack: ExitStack) -> str:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    if localkafka.status() is None:
        print("starting the local Kafka broker (first run fetches it from Maven Central)...")
        started = time.monotonic()
        bootstrap = localkafka.start()
        print(f"broker up at {bootstrap} in {time.monotonic() - started:.1f}s")
        stack.callback(localkafka.stop)
        return bootstrap
    return localkafka.start()


def _show(profile: dict[str, Any]) -> str:
    attributes = {k: v for k, v in profile["attributes"].items() if v not in (None, {})}
    attributes["custom"] = {
        name: value[1] if isinstance(value, tuple) else value
        for name, value in profile["attributes"]["custom"].items()
    }
    shown = {**profile, "attributes": attributes}
    return json.dumps(shown, indent=2, default=str, ensure_ascii=False)


def run_demo(people: int = 800, seed: int = 7) -> None:
    run = time.strftime("%Y%m%d%H%M%S")
    workdir = Path(".data") / f"demo-{run}"
    with ExitStack() as stack:
        settings = Settings.from_env().with_changes(
            bootstrap_servers=_bootstrap(stack),
            app_id=f"identity-stream-demo-{run}",
            topic_prefix=f"demo-{run}.",
            data_dir=workdir / "state",
        )
        config = settings.kafka_config()
        topology = declare(settings.topic_prefix, settings.partitions)
        ensure_topics(config, topology.all(), settings.replication_factor)
        stack.callback(
            delete_topics,
            config,
            [t.name for t in topology.all()]
            + [
                f"{settings.app_id}-profile-state-changelog",
                f"{settings.app_id}-__assignor-__leader",
            ],
        )
        stack.callback(shutil.rmtree, workdir, True)

        worker = WorkerProcess(settings, workdir / "worker.log").start()
        stack.callback(worker.stop)
        print("starting a worker process...")
        worker.wait_ready()

        events = generate(WorkloadSpec(people=people, seed=seed))
        started = time.monotonic()
        publish(config, topology.identify_events.name, events, len(events), progress=True)
        with tqdm(desc="processing", unit="msg") as bar:

            def show(remaining: int) -> None:
                bar.set_postfix(remaining=remaining)
                bar.refresh()

            wait_caught_up(
                config,
                settings.app_id,
                [topology.identify_events.name, topology.events_by_profile.name],
                timeout=300,
                on_poll=show,
            )
        elapsed = time.monotonic() - started

        profiles = latest_by_key(config, topology.profiles.name, PROFILE.decode)
        rejections = [r for _, r, _ in read_all(config, topology.rejections.name, REJECTION.decode)]
        known = [p for p in profiles.values() if p["userId"] is not None]
        reasons = Counter(r["reason"] for r in rejections)
        print()
        print(f"events published      {len(events):>8}")
        print(f"end-to-end time       {elapsed:>8.1f} s  ({len(events) / elapsed:,.0f} events/s)")
        print(
            f"profiles              {len(profiles):>8}  ({len(known)} known users, "
            f"{len(profiles) - len(known)} anonymous)"
        )
        print(
            f"rejections            {len(rejections):>8}  "
            + ", ".join(f"{reason}: {n}" for reason, n in reasons.most_common())
        )
        print()
        showcase = sorted(known, key=lambda p: (-len(p["anonymousIds"]), p["profileId"]))[:2]
        anonymous = sorted(
            (p for p in profiles.values() if p["userId"] is None), key=lambda p: p["profileId"]
        )[:1]
        for profile in [*showcase, *anonymous]:
            print(_show(profile))
        print(f"\nread back from topic {topology.profiles.name}; cleaning up.")
