"""`make demo`: from nothing to printed profiles, through the real pipeline, then clean up.

It runs a real broker (yours if KAFKA_BOOTSTRAP_SERVERS is set, else the local one), a real worker
process, and a generated stream of a few thousand identify events; then reads the profiles back
from the profiles topic. Everything it started or created, it stops or deletes.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tqdm import tqdm

from streams.runtime.settings import Settings
from streams.tools.harness import Deployment, cluster
from streams.tools.readback import lag
from streams.tools.workload import WorkloadSpec, generate


def _plain(value: Any) -> Any:
    """A custom value as JSON would show it: union records unwrapped, times in ISO-8601."""
    if isinstance(value, tuple):
        name, record = value
        if name.endswith("DateTime"):
            return record["epochMillis"].isoformat()
        if name.endswith("ListValue"):
            return record["items"]
        return json.loads(record["json"])
    return value


def _readable(profile: dict[str, Any]) -> str:
    """A profile as a person wants to read it: set attributes only, plain values."""
    attributes = {
        name: value
        for name, value in profile["attributes"].items()
        if value is not None and name != "custom"
    }
    attributes["custom"] = {
        name: _plain(value) for name, value in profile["attributes"]["custom"].items()
    }
    times = {name: profile[name].isoformat() for name in ("createdAt", "updatedAt")}
    return json.dumps({**profile, **times, "attributes": attributes}, indent=2)


def run_demo(people: int = 800, seed: int = 7) -> None:
    run = time.strftime("%Y%m%d-%H%M%S")
    with ExitStack() as stack:
        settings = Settings.from_env().with_changes(
            bootstrap_servers=cluster(stack),
            app_id=f"identity-stream-demo-{run}",
            topic_prefix=f"demo-{run}.",
        )
        deployment = Deployment(settings, Path(".data") / f"demo-{run}").create_topics()
        stack.callback(deployment.destroy)
        print("starting a worker process...")
        deployment.start_worker()

        events = generate(WorkloadSpec(people=people, seed=seed))
        started = time.monotonic()
        deployment.publish(events, len(events), progress=True)
        with tqdm(desc="processing", unit="ev", total=len(events)) as bar:
            input_topic = [deployment.topology.identify_events.name]
            while (left := lag(deployment.kafka_config, settings.app_id, input_topic)) > 0:
                bar.update(len(events) - left - bar.n)
                time.sleep(0.2)
            bar.update(len(events) - bar.n)
        deployment.wait_processed(timeout=300)  # and every stage behind the first
        elapsed = time.monotonic() - started
        counters = deployment.counters()

        profiles = deployment.profiles()
        rejections = deployment.rejections()
        known = [p for p in profiles.values() if p["userId"] is not None]
        reasons = Counter(r["reason"] for r in rejections)
        print()
        print(f"events published   {len(events):>7}")
        print(f"end to end         {elapsed:>7.1f} s   ({len(events) / elapsed:,.0f} events/s)")
        print(
            f"profiles           {len(profiles):>7}   ({len(known)} known users, "
            f"{len(profiles) - len(known)} anonymous visitors)"
        )
        print(
            f"outcomes           {counters['applied']:>7} applied, "
            f"{counters['applied_with_warning']} applied with a warning, "
            f"{counters['rejected']} rejected (worker counters)"
        )
        print(
            f"rejection records  {len(rejections):>7}   "
            + ", ".join(f"{reason} {n}" for reason, n in reasons.most_common())
        )
        print(f"\na few profiles, read back from {deployment.topology.profiles.name}:")
        showcase = sorted(known, key=lambda p: (-len(p["anonymousIds"]), p["profileId"]))[:2]
        anonymous = sorted(
            (p for p in profiles.values() if p["userId"] is None), key=lambda p: p["profileId"]
        )[:1]
        for profile in [*showcase, *anonymous]:
            print(_readable(profile))
        print("\ncleaning up: stopping the worker, deleting the demo topics and state.")
