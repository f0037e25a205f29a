"""`make demo`: from nothing to printed profiles, through the real pipeline, then clean up.

It runs a real broker (yours if KAFKA_BOOTSTRAP_SERVERS is set, else the local one), a real schema
registry (yours if SCHEMA_REGISTRY_URL is set, else the local one), a real worker process, and a
generated stream of a few thousand identify events published the ways producers publish them:
Avro single-object, Avro framed through the registry, Segment and WebEngage JSON
(``streams.tools.producers``); then reads the profiles back from the profiles topic and counts,
per format, what was published and what became part of a profile. Everything it started or
created, it stops or deletes.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from tqdm import tqdm

from streams.rules.input_formats import confluent_schema_id
from streams.runtime.output_encoding import subject
from streams.runtime.settings import Settings
from streams.tools.harness import Deployment, cluster, schema_registry
from streams.tools.producers import CONFLUENT, FORMATS, mix, registry_framing
from streams.tools.publisher import Message
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


def _forget(client: SchemaRegistryClient, name: str) -> None:
    """Delete the demo's subject, soft then for good, as a registry wants it deleted."""
    if name in client.get_subjects():
        client.delete_subject(name)
        client.delete_subject(name, permanent=True)


def _by_format(
    mixed: list[tuple[str, Message]], events: list[Message], rejections: list[dict[str, Any]]
) -> list[str]:
    """A line per format: messages published in it, applied, and refused whole with the reasons.

    A refusal names its message by messageId, or keeps its bytes when it could not be read.
    """
    formats: dict[str | bytes | None, str] = {}
    for (fmt, (_, raw)), (_, value) in zip(mixed, events, strict=True):
        formats[raw] = fmt
        if isinstance(value, dict):
            formats[value["messageId"]] = fmt
    refused: dict[str, Counter[str]] = {fmt: Counter() for fmt in FORMATS}
    for rejection in rejections:
        if rejection["wholeMessage"]:
            origin = formats.get(rejection["messageId"]) or formats[rejection["rawValue"]]
            refused[origin][rejection["reason"]] += 1
    counts = Counter(fmt for fmt, _ in mixed)
    lines = [f"{'published as':<26}{'events':>7}{'applied':>9}   refused whole"]
    for fmt in FORMATS:
        reasons = ", ".join(f"{reason} {n}" for reason, n in refused[fmt].most_common())
        applied = counts[fmt] - refused[fmt].total()
        lines.append(f"  {fmt:<24}{counts[fmt]:>7}{applied:>9}   {reasons or '-'}")
    total_refused = sum(n.total() for n in refused.values())
    lines.append(f"  {'all':<24}{len(mixed):>7}{len(mixed) - total_refused:>9}")
    return lines


def _sources(profile: dict[str, Any], published: list[tuple[str, dict[str, Any]]]) -> str:
    """How the events of a profile's user (or, naming no user, of its devices) were published."""
    devices = set(profile["anonymousIds"])
    counts = Counter(
        fmt
        for fmt, record in published
        if record["workspaceId"] == profile["workspaceId"]
        and (
            record["userId"] == profile["userId"]
            if record.get("userId")
            else record.get("anonymousId") in devices
        )
    )
    return " + ".join(f"{n} {fmt}" for fmt, n in counts.most_common())


def run_demo(people: int = 800, seed: int = 7) -> None:
    run = time.strftime("%Y%m%d-%H%M%S")
    with ExitStack() as stack:
        registry_url, registry_answers = schema_registry(stack)
        settings = Settings.from_env()
        settings = settings.with_changes(
            bootstrap_servers=cluster(stack),
            app_id=f"identity-stream-demo-{run}",
            topic_prefix=f"demo-{run}.",
            # the worker looks writer schemas up only when framed messages arrive
            schema_registry=replace(settings.schema_registry, url=registry_url),
        )
        deployment = Deployment(settings, Path(".data") / f"demo-{run}").create_topics()
        stack.callback(deployment.destroy)
        print("starting a worker process...")
        deployment.start_worker()

        registry_answers.result()
        client = SchemaRegistryClient(settings.schema_registry.client_config())
        input_topic = deployment.topology.identify_events.name
        stack.callback(_forget, client, subject(input_topic))
        events = generate(WorkloadSpec(people=people, seed=seed))
        mixed = mix(events, registry_framing(client, input_topic))
        schema_id = next(confluent_schema_id(raw) for fmt, (_, raw) in mixed if fmt == CONFLUENT)
        started = time.monotonic()
        deployment.publish((message for _, message in mixed), len(mixed), progress=True)
        with tqdm(desc="processing", unit="ev", total=len(events)) as bar:
            while (left := lag(deployment.kafka_config, settings.app_id, [input_topic])) > 0:
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
        records = [
            (fmt, value)
            for (fmt, _), (_, value) in zip(mixed, events, strict=True)
            if isinstance(value, dict)
        ]
        print()
        print(f"events published   {len(events):>7}")
        print(f"end to end         {elapsed:>7.1f} s   ({len(events) / elapsed:,.0f} events/s)")
        print(
            f"schema registry    {registry_url}   (IdentifyEvent is schema id {schema_id} "
            f"under {subject(input_topic)})"
        )
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
        print()
        print("\n".join(_by_format(mixed, events, rejections)))
        print(f"\na few profiles, read back from {deployment.topology.profiles.name}:")
        showcase = sorted(known, key=lambda p: (-len(p["anonymousIds"]), p["profileId"]))[:2]
        anonymous = sorted(
            (p for p in profiles.values() if p["userId"] is None), key=lambda p: p["profileId"]
        )[:1]
        for profile in [*showcase, *anonymous]:
            print(f"# its events, as published: {_sources(profile, records)}")
            print(_readable(profile))
        print("\ncleaning up: stopping the worker, deleting the demo topics, subject and state.")
