"""The faust application: topics and tables wired to the pure rules, nothing else.

Two stages, like a Kafka Streams ``selectKey().repartition().aggregate()``:

    identify-events --route--> identify-events-by-profile --fold--> profiles
          (any key)     |            (key: profileId)         |      (compacted)
                        +--> rejections                 profile-state table (RocksDB)

Both agents run with concurrency 1 under at-least-once processing; every fold is a join of
registers, so a redelivered event changes nothing and its profile is simply emitted again (the
earlier emission may be the thing the crash lost).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.types import EventT

from streams import profile
from streams.events import from_json
from streams.outcomes import Source, rejection_record
from streams.routing import route
from streams.settings import Settings
from topology.avro import AvroCodec
from topology.topics import TopicSpec, Topology, declare

PROFILE_TABLE = "profile-state"


def _faust_topic(app: faust.App, spec: TopicSpec) -> faust.TopicT:
    return app.topic(
        spec.name,
        partitions=spec.partitions,
        key_serializer="raw",
        value_serializer=AvroCodec(spec.schema) if spec.schema else "json",
        internal=False,
    )


def _broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",")]


def build_app(settings: Settings) -> faust.App:
    """A worker's faust App for these settings (topics, table, agents)."""
    topology: Topology = declare(settings.topic_prefix, settings.partitions)
    app = faust.App(
        settings.app_id,
        broker=_broker_urls(settings.bootstrap_servers),
        store="rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
        autodiscover=False,
    )
    identify_events = app.topic(
        topology.identify_events.name, key_serializer="raw", value_serializer="raw"
    )
    events_by_profile = _faust_topic(app, topology.events_by_profile)
    profiles = _faust_topic(app, topology.profiles)
    rejections = _faust_topic(app, topology.rejections)
    states = app.Table(
        PROFILE_TABLE,
        partitions=settings.partitions,
        schema=faust.Schema(key_serializer="raw", value_serializer="json"),
    )

    @app.agent(identify_events, concurrency=1)
    async def route_events(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        """Decode, check and re-key by profile; refusals go to the rejections topic."""
        event: EventT
        async for event in stream.events():
            message = event.message
            routed = route(message.value)
            source = Source(message.topic, message.partition, message.offset)
            now = time.time_ns() // 1_000_000
            for rejection in routed.rejections:
                record = rejection_record(
                    rejection,
                    source,
                    now,
                    routed.message_id,
                    routed.workspace_id,
                    message.value if routed.undecodable else None,
                )
                await rejections.send(key=routed.message_id, value=record)
            if routed.event is not None:
                await events_by_profile.send(key=routed.profile_id, value=routed.event)
            yield None

    @app.agent(events_by_profile, concurrency=1)
    async def fold_events(stream: faust.StreamT[Any]) -> AsyncIterator[None]:
        """Fold each event into its profile's state and publish the whole profile."""
        async for key, payload in stream.items():
            profile_id = key.decode() if isinstance(key, bytes) else key
            state = profile.fold(states.get(profile_id), from_json(payload), profile_id)
            states[profile_id] = state
            await profiles.send(key=profile_id, value=profile.render(state))
            yield None

    return app
