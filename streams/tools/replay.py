"""Rebuild everything from the input topic into a new version, and compare two versions.

The input topic is the system of record (kept forever), and every profile id is derived from
the input, so a replay into fresh tables and topics must give the same profiles: `compare`
checks it. A replay can also start at a point in time, to rebuild from a known-good moment.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition
from tqdm import tqdm

from streams.runtime.settings import Settings
from streams.tools.harness import Deployment
from streams.tools.readback import decoder, lag, latest_by_key, read_all
from topology.avro import PROFILE, PROFILE_MERGE, REJECTION
from topology.topics import declare


def replay_settings(live: Settings, version: str) -> Settings:
    """The settings of version ``version``: its own app id, topics and state, the same input."""
    return live.with_changes(
        app_id=f"{live.app_id}-{version}",
        topic_prefix=f"{live.topic_prefix}{version}.",
        input_topic=live.topology().identify_events.name,
        data_dir=live.data_dir / f"{live.app_id}-{version}",
    )


def _start_at(settings: Settings, since_ms: int) -> None:
    """Commit the new group's input offsets at ``since_ms`` so the replay starts there."""
    topic = settings.topology().identify_events.name
    consumer = Consumer({**settings.kafka_config(), "group.id": settings.app_id})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    wanted = [TopicPartition(topic, p, since_ms) for p in partitions]
    offsets = consumer.offsets_for_times(wanted, timeout=10)
    for tp in offsets:
        if tp.offset < 0:  # nothing at or after the time: start at the end
            tp.offset = consumer.get_watermark_offsets(tp, timeout=10)[1]
    consumer.commit(offsets=offsets, asynchronous=False)
    consumer.close()


def replay(
    live: Settings, version: str, since_ms: int | None = None, timeout: float = 3600
) -> Settings:
    """Run a worker of the new version until it has processed the whole input, then stop it."""
    settings = replay_settings(live, version)
    shutil.rmtree(settings.data_dir, ignore_errors=True)  # a replay starts from nothing
    deployment = Deployment(settings, settings.data_dir).create_topics()
    if since_ms is not None:
        _start_at(settings, since_ms)
    input_topic = [settings.topology().identify_events.name]
    total = lag(settings.kafka_config(), settings.app_id, input_topic)
    worker = deployment.start_worker()
    try:
        with tqdm(total=total, desc=f"replaying into {settings.topic_prefix}*", unit="ev") as bar:
            deadline = time.monotonic() + timeout
            while (left := lag(settings.kafka_config(), settings.app_id, input_topic)) > 0:
                bar.update(total - left - bar.n)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replay still has {left} events to go")
                time.sleep(0.5)
            bar.update(total - bar.n)
        deployment.wait_processed(timeout=timeout)
    finally:
        worker.stop()
    return settings


@dataclass(frozen=True)
class Difference:
    only_in_a: list[str]
    only_in_b: list[str]
    changed: list[str]
    same: int
    merges_equal: bool
    rejections_equal: bool
    types_equal: bool
    # refusals that log a decision of the moment (see DECISION_LOG): told, never a difference
    decision_log: tuple[int, int]

    @property
    def equal(self) -> bool:
        profiles_equal = not (self.only_in_a or self.only_in_b or self.changed)
        return profiles_equal and self.merges_equal and self.rejections_equal and self.types_equal


def _links(merges: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    # A merge's snapshot depends on how much of the device's history had arrived; what it
    # decides does not.
    fields = ("anonymousId", "intoProfileId", "userId", "eventTime", "causeMessageId")
    return {key: tuple(m[f] for f in fields) for key, m in merges.items()}


# Refusals that record a decision as it stood when they were made: a late, earlier value may
# overturn a type decision, a late, earlier login a device's owner. The profiles and links are
# exact; these logs may differ between two runs of the same input.
DECISION_LOG = frozenset({"type_mismatch", "attribute_limit_reached", "merge_refused"})


def _refusals(records: list[tuple[str | None, Any, int]]) -> tuple[set[tuple[Any, ...]], int]:
    """Refusals that follow from their message alone (a set: at-least-once may repeat one), and
    how many decision-log refusals there were."""
    fields = ("reason", "messageId", "subject", "sourcePartition", "sourceOffset")
    own = {tuple(v[f] for f in fields) for _, v, _ in records if v["reason"] not in DECISION_LOG}
    return own, sum(1 for _, v, _ in records if v["reason"] in DECISION_LOG)


def _types(settings: Settings, topic: str) -> dict[tuple[str, str], Any]:
    """The custom attribute type decisions a version's attribute-firsts records make."""
    types = settings.policies().types
    for key, value, _ in read_all(settings.kafka_config(), topic, orjson.loads):
        if value is not None and key is not None:
            types.add(key, value)
    return {
        (workspace, name): types.decision(workspace, name)
        for workspace, name, _, _ in (key.split("\x1f") for key in types.firsts)
    }


def compare(settings: Settings, prefix_a: str, prefix_b: str) -> Difference:
    """Compare two versions: latest profiles, device links, custom attribute types, and the
    rejections that follow from their message alone."""
    config = settings.kafka_config()
    topics = [declare(settings.app_id, p, settings.partitions) for p in (prefix_a, prefix_b)]
    profile, merge, rejection = (
        decoder(schema, settings.schema_registry) for schema in (PROFILE, PROFILE_MERGE, REJECTION)
    )
    a, b = (latest_by_key(config, t.profiles.name, profile) for t in topics)
    merges_a, merges_b = (
        _links(latest_by_key(config, t.profile_merges.name, merge)) for t in topics
    )
    (refusals_a, log_a), (refusals_b, log_b) = (
        _refusals(read_all(config, t.rejections.name, rejection)) for t in topics
    )
    types_a, types_b = (_types(settings, t.attribute_firsts.name) for t in topics)
    changed = sorted(key for key in a.keys() & b.keys() if a[key] != b[key])
    return Difference(
        only_in_a=sorted(a.keys() - b.keys()),
        only_in_b=sorted(b.keys() - a.keys()),
        changed=changed,
        same=len(a.keys() & b.keys()) - len(changed),
        merges_equal=merges_a == merges_b,
        rejections_equal=refusals_a == refusals_b,
        types_equal=types_a == types_b,
        decision_log=(log_a, log_b),
    )
