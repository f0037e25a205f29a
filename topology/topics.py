"""Every topic of the pipeline, declared once: name, partitions, key, value schema and retention.

The worker, the admin tooling, the publisher, the tests and the README table all read this, so a
topic cannot be configured in two different ways. Topics that faust reads or writes with a table
(the repartition topic and the table changelog) share one partition count: faust only co-locates
a stream partition with the table partition of the same number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from streams.rules.outcomes import (
    ATTRIBUTE_FIRSTS,
    BY_ANONYMOUS,
    BY_PROFILE,
    MERGES,
    PROFILES,
    REJECTIONS,
)
from streams.rules.partitioning import murmur2
from topology.avro import IDENTIFY_EVENT, PROFILE, PROFILE_MERGE, REJECTION, AvroSchema
from topology.stages import (
    ANONYMOUS_IDS,
    IDENTIFY_EVENTS,
    PROFILE_STATE,
)

DAY_MS = 24 * 3600 * 1000
# Logical stream names (topology.stages, streams.rules.outcomes) -> fields of Topology
_STREAM_FIELDS = {
    IDENTIFY_EVENTS: "identify_events",
    BY_ANONYMOUS: "events_by_anonymous",
    BY_PROFILE: "events_by_profile",
    PROFILES: "profiles",
    MERGES: "profile_merges",
    REJECTIONS: "rejections",
    ATTRIBUTE_FIRSTS: "attribute_firsts",
}
_CHANGELOG_FIELDS = {
    ANONYMOUS_IDS.name: "anonymous_ids_changelog",
    PROFILE_STATE.name: "profile_state_changelog",
}


@lru_cache(maxsize=2**16)
def partition_for(key: str, partitions: int) -> int:
    """The partition of a keyed record: murmur2, as faust, aiokafka and the Java client place it.

    Stages that send records together (see streams.runtime.envelopes) and the lookups that find a
    key's worker must agree with it. An event's keys recur across its hops and its profile's
    next events: remembered.
    """
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    key: str
    value: str
    schema: AvroSchema | None
    config: dict[str, str] = field(default_factory=dict)
    doc: str = ""


@dataclass(frozen=True)
class Topology:
    identify_events: TopicSpec
    events_by_anonymous: TopicSpec
    events_by_profile: TopicSpec
    profiles: TopicSpec
    profile_merges: TopicSpec
    rejections: TopicSpec
    attribute_firsts: TopicSpec
    anonymous_ids_changelog: TopicSpec
    profile_state_changelog: TopicSpec

    def all(self) -> list[TopicSpec]:
        return [
            self.identify_events,
            self.events_by_anonymous,
            self.events_by_profile,
            self.profiles,
            self.profile_merges,
            self.rejections,
            self.attribute_firsts,
            self.anonymous_ids_changelog,
            self.profile_state_changelog,
        ]

    def stream(self, name: str) -> TopicSpec:
        """The topic of a logical stream: a stage's input or a rule's output."""
        return getattr(self, _STREAM_FIELDS[name])

    def changelog(self, table: str) -> TopicSpec:
        """The compacted topic a table is restored from."""
        return getattr(self, _CHANGELOG_FIELDS[table])

    def internal(self) -> list[TopicSpec]:
        """Repartition topics: a worker has caught up when these and the input are consumed."""
        return [
            self.events_by_anonymous,
            self.events_by_profile,
        ]


def _repartition(name: str, partitions: int, key: str, value: str, doc: str) -> TopicSpec:
    # Internal hops between differently keyed stages: consumed at once, kept a week for replay
    # of a stalled stage, never the system of record.
    return TopicSpec(
        name=name,
        partitions=partitions,
        key=f"none; records inside are keyed by {key}, all on the message's partition",
        value=f"envelope: JSON array of [key, {value}] records (internal)",
        schema=None,
        config={"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)},
        doc=doc,
    )


def _changelog(app_id: str, table: str, partitions: int) -> TopicSpec:
    # faust names and would create these itself; creating them up front, before any worker
    # starts, spares workers the metadata race where a fresh changelog topic looks like it has
    # 0 partitions (faust then refuses to write the table: PartitionsMismatch).
    return TopicSpec(
        name=f"{app_id}-{table}-changelog",
        partitions=partitions,
        key="as the table (UTF-8)",
        value="table record (JSON, internal)",
        schema=None,
        config={"cleanup.policy": "compact"},
        doc=f"faust changelog of the {table} table: restores it on any worker.",
    )


def declare(
    app_id: str, prefix: str = "", partitions: int = 4, input_topic: str | None = None
) -> Topology:
    """The topics of one deployment: ``app_id`` names faust's changelogs, ``prefix`` all others,
    so several deployments (and tests) can share a cluster. A replay reads another deployment's
    input (``input_topic``) into topics of its own."""
    return Topology(
        anonymous_ids_changelog=_changelog(app_id, ANONYMOUS_IDS.name, partitions),
        profile_state_changelog=_changelog(app_id, PROFILE_STATE.name, partitions),
        identify_events=TopicSpec(
            name=input_topic or f"{prefix}identify-events",
            partitions=partitions,
            key="any (producers choose; events of one person may be on several partitions)",
            value="IdentifyEvent (Avro single-object)",
            schema=IDENTIFY_EVENT,
            # The input is the system of record: state is rebuilt by replaying it, so keep it all.
            config={"cleanup.policy": "delete", "retention.ms": "-1"},
            doc="Identify calls published by the services.",
        ),
        events_by_anonymous=_repartition(
            f"{prefix}identify-events-by-anonymous",
            partitions,
            key="profileId of the anonymous id (UTF-8)",
            value="checked, normalised event",
            doc="Repartition topic: events naming a device, keyed by the device.",
        ),
        events_by_profile=_repartition(
            f"{prefix}identify-events-by-profile",
            partitions,
            key="profileId (UTF-8)",
            value="profile command: event, member, attach, detach",
            doc="Repartition topic: everything that changes a profile, keyed by the profile.",
        ),
        profiles=TopicSpec(
            name=f"{prefix}profiles",
            partitions=partitions,
            key="profileId (UTF-8)",
            value="Profile (Avro single-object); null = tombstone",
            schema=PROFILE,
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
            doc="Changelog of whole profiles; compacted, so it holds the latest profile per id.",
        ),
        profile_merges=TopicSpec(
            name=f"{prefix}profile-merges",
            partitions=partitions,
            key="fromProfileId: the absorbed anonymous profile (UTF-8)",
            value="ProfileMerge (Avro single-object)",
            schema=PROFILE_MERGE,
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
            doc="Every device that joined a known user, with the pre-merge snapshot.",
        ),
        rejections=TopicSpec(
            name=f"{prefix}rejections",
            partitions=partitions,
            key="messageId of the input (UTF-8), or null when undecodable",
            value="Rejection (Avro single-object)",
            schema=REJECTION,
            config={"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)},
            doc="Every refusal, whole or partial, with the reason and the source coordinates.",
        ),
        attribute_firsts=TopicSpec(
            name=f"{prefix}attribute-firsts",
            partitions=partitions,
            key="workspaceId, attribute, kind and routing partition (UTF-8, separated by \\x1f)",
            value="[event time, messageId] of the earliest value seen there (JSON, internal)",
            schema=None,
            config={"cleanup.policy": "compact"},
            doc="Earliest custom values: every worker reads it all to decide attribute types.",
        ),
    )
