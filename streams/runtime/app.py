"""The faust application: topics and tables wired to the pure stages, nothing else.

Five stages; each stateful one reads and writes only the table keyed like its own input stream
(faust only serves the table partition of the current event), and data changes key only through
a repartition topic:

    route     identify-events (any key)         decode, check, re-key     (stateless)
    dedupe    ...-by-message (workspace+msgId)  drop retried messageIds   table message-ids
    type      ...-by-workspace (workspaceId)    first-type-wins registry  table attribute-types
    link      ...-by-anonymous (device)         device -> user ownership  table anonymous-ids
    assemble  ...-by-profile (profileId)        profiles, profile-merges  table profile-state
    every stage -> rejections

All agents run with concurrency 1 under at-least-once processing. Every stage is idempotent
(joins of registers, set-like membership), so a redelivered event changes nothing and its
outputs are simply sent again: the earlier send may be what the crash lost.
"""

from __future__ import annotations

import ssl
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import EventT
from prometheus_client import CONTENT_TYPE_LATEST

from streams.rules import assembly, deduplication, linking
from streams.rules import attribute_types as attribute_types_stage
from streams.rules.attribute_types import Catalog
from streams.rules.deduplication import pack
from streams.rules.identity import Blocklists
from streams.rules.outcomes import (
    BY_ANONYMOUS,
    BY_MESSAGE,
    BY_PROFILE,
    BY_WORKSPACE,
    MERGES,
    PROFILES,
    REJECTIONS,
    Emit,
    Source,
    coalesce,
)
from streams.rules.routing import route
from streams.runtime import commit_guard, envelopes, lookup, watchdog
from streams.runtime.accounting import Counters
from streams.runtime.delivery import Outbox, Record
from streams.runtime.settings import Security, Settings
from topology.topics import (
    ANONYMOUS_TABLE,
    ATTRIBUTE_TYPES_TABLE,
    MESSAGE_IDS_TABLE,
    PROFILE_TABLE,
    TopicSpec,
    partition_for,
)

# Per table partition (a worker holds 4 tables x its partitions). faust's defaults (64 MiB write
# buffers x 3, a 2 GiB block cache) are sized for one big table per process; these bound the
# worker's memory whatever the profile count, and the state itself stays on disk.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 8 * 2**20,
    "max_write_buffer_number": 2,
    "block_cache_size": 16 * 2**20,
}


def _repartition_topic(app: faust.App, spec: TopicSpec) -> faust.TopicT:
    """A stage's input: envelopes, bytes as they are (sent by runtime.delivery, not faust)."""
    return app.topic(
        spec.name,
        partitions=spec.partitions,
        key_serializer="raw",
        value_serializer="raw",
        internal=False,
    )


def _credentials(security: Security) -> faust.types.auth.CredentialsT | None:
    """faust's view of the same security settings the confluent-kafka clients use."""
    context = None
    if security.protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=security.ssl_ca_location)
        if security.ssl_certificate_location:
            context.load_cert_chain(security.ssl_certificate_location, security.ssl_key_location)
    if security.protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password,
            mechanism=security.sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context) if context is not None else None


def _broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",")]


@contextmanager
def _processing(event: EventT) -> Iterator[None]:
    """Make ``event`` the one faust's tables write for (its partition, its changelog offset).

    faust finds it in a context variable that its per-message iteration sets; a batch body
    runs outside that iteration, so each message of a batch is made current while it is
    handled. (faust-streaming 0.15: ``faust.streams._current_event``.)
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def _now() -> int:
    return time.time_ns() // 1_000_000


def build_app(settings: Settings) -> faust.App:
    """A worker's faust App for these settings (topics, tables, agents)."""
    topology = settings.topology()
    blocklists = Blocklists.load(settings.blocklist_file)
    catalog = Catalog.load(settings.attribute_catalog)
    app = faust.App(
        settings.app_id,
        broker=_broker_urls(settings.bootstrap_servers),
        broker_credentials=_credentials(settings.security),
        store="rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=0.005,
        # Outputs leave at commit (at-least-once): commit often so the next stage starts early.
        broker_commit_interval=settings.commit_interval_s,
        table_standby_replicas=settings.standby_replicas,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        web_enabled=True,
        web_bind=settings.web_bind,
        web_host=settings.web_host,  # what other workers call to reach this one
        web_port=settings.web_port,
        # faust's own pages would expose tables, the graph and stats: only ours are served.
        web_graph_enabled=False,
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        autodiscover=False,
    )
    counters = Counters()
    handled = commit_guard.guard(app)

    @app.page("/counters/")
    async def show_counters(view: Any, request: Any) -> Any:
        """Outcome counters of this worker since it started (JSON)."""
        return view.json(counters.snapshot())

    @app.page("/metrics")
    async def show_metrics(view: Any, request: Any) -> Any:
        """The same counters and more, for Prometheus."""
        # aiohttp refuses a charset inside content_type; the text format is UTF-8 anyway
        content_type = "; ".join(
            part.strip() for part in CONTENT_TYPE_LATEST.split(";") if "charset" not in part
        )
        return view.bytes(counters.prometheus(), content_type=content_type)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: faust.App, *args: Any, **kwargs: Any) -> None:
        counters.count_rebalance()

    identify_events = app.topic(
        topology.identify_events.name, key_serializer="raw", value_serializer="raw"
    )
    hop_topics = {  # repartition topics, carrying envelopes (see streams.runtime.envelopes)
        BY_MESSAGE: topology.events_by_message,
        BY_WORKSPACE: topology.custom_values_by_workspace,
        BY_ANONYMOUS: topology.events_by_anonymous,
        BY_PROFILE: topology.events_by_profile,
    }
    hops = {name: _repartition_topic(app, spec) for name, spec in hop_topics.items()}
    outputs = {
        PROFILES: topology.profiles,
        MERGES: topology.profile_merges,
        REJECTIONS: topology.rejections,
    }
    outbox = Outbox(settings.kafka_config(), linger_ms=5)

    @app.on_before_shutdown.connect
    def close_outbox(sender: faust.App, **kwargs: Any) -> None:
        """After the consumer's last commit; every batch has awaited its outputs by then."""
        outbox.close()

    def table(name: str) -> faust.Table:
        return app.Table(
            name,
            partitions=settings.partitions,
            schema=faust.Schema(key_serializer="raw", value_serializer="json"),
            options=ROCKSDB_OPTIONS,
        )

    message_ids = table(MESSAGE_IDS_TABLE)
    attribute_types = table(ATTRIBUTE_TYPES_TABLE)
    anonymous_ids = table(ANONYMOUS_TABLE)
    profile_states = table(PROFILE_TABLE)

    _serve_lookups(app, settings, profile_states, anonymous_ids)
    if settings.stall_timeout_s > 0:
        inputs = {
            identify_events.get_topic_name(),
            *(hop.get_topic_name() for hop in hops.values()),
        }
        watchdog.install(app, inputs, handled, settings.stall_timeout_s)
    counters.watch_tables(
        lambda: _table_sizes([message_ids, attribute_types, anonymous_ids, profile_states])
    )

    async def send_all(emits: list[Emit]) -> None:
        """Outputs one by one, the latest per key; records for the next stage in one envelope
        per partition. Returns once the broker has them all: the caller acks its input only
        afterwards (see streams.runtime.delivery)."""
        records: list[Record] = []
        by_partition: dict[tuple[str, int], list[tuple[str, Any]]] = {}
        for emit in coalesce(emits):
            if emit.output in hop_topics:
                where = (emit.output, partition_for(emit.key, settings.partitions))
                by_partition.setdefault(where, []).append((emit.key, emit.value))
            else:
                counters.count_published(emit)
                spec = outputs[emit.output]
                key = None if emit.key is None else emit.key.encode()
                value = None if emit.value is None else spec.schema.encode(emit.value)
                records.append(Record(spec.name, key, value))
        for (hop, partition), items in by_partition.items():
            records += [
                Record(hop_topics[hop].name, None, envelope, partition)
                for envelope in envelopes.seal(items)
            ]
        await outbox.deliver(records)

    def stage(handle: Callable[[EventT], list[Emit]]) -> Callable[..., AsyncIterator[None]]:
        """An agent that handles messages in batches and sends what a batch produced together.

        faust acks a batch's messages only after the body has run, the body returns only once
        the broker has the batch's outputs, and no commit passes a message not marked handled
        here (see streams.runtime.commit_guard): at-least-once. Batches fill from what is already
        waiting, up to ``batch_size`` messages or ``batch_wait_s``: few, full envelopes under
        load.
        """

        async def agent(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            batch: list[EventT]
            async for batch in stream.take_events(settings.batch_size, settings.batch_wait_s):
                emits: list[Emit] = []
                for event in batch:
                    with _processing(event):
                        emits += handle(event)
                await send_all(emits)
                for event in batch:
                    handled.mark(event.message)
                yield None

        return agent

    def route_one(event: EventT) -> list[Emit]:
        """Decode, check, re-key by device or profile; refusals go to the rejections topic."""
        message = event.message
        source = Source(message.topic, message.partition, message.offset)
        if message.timestamp:
            counters.observe_input_lag(time.time() - message.timestamp)
        routed = route(
            message.value, source, _now(), blocklists, settings.attributes, settings.after_erasure
        )
        if routed.dedupe_key is None:
            counters.count_input(routed.emits)
            return routed.emits
        decisions = pack(routed.emits, routed.timestamp, source)
        return [Emit(BY_MESSAGE, routed.dedupe_key, decisions)]

    app.agent(identify_events, name="route_events", concurrency=1)(stage(route_one))

    def stateful(
        table: faust.Table,
        step: Callable[[Any, str, dict[str, Any]], tuple[Any, list[Emit]]],
        count: Callable[[Any, list[Emit]], None] = lambda value, emits: counters.count_refusals(
            emits
        ),
    ) -> Callable[..., AsyncIterator[None]]:
        """A keyed stage: its records' table partition is the one of the envelope's message."""

        def handle(event: EventT) -> list[Emit]:
            # Each changed key is written once per envelope, like Kafka Streams' record cache:
            # one store write and one changelog record instead of one per update.
            changed: dict[str, Any] = {}
            emits: list[Emit] = []
            for key, value in envelopes.unseal(event.value):
                before = changed[key] if key in changed else table.get(key)
                record, produced = step(before, key, value)
                if record != before:
                    changed[key] = record
                count(value, produced)
                emits += produced
            for key, record in changed.items():
                if record is None:
                    table.pop(key, None)
                else:
                    table[key] = record
            return emits

        return stage(handle)

    window_ms = int(settings.dedupe_window_s * 1000)
    app.agent(hops[BY_MESSAGE], name="drop_duplicates", concurrency=1)(
        stateful(
            message_ids,
            lambda seen, key, v: deduplication.on_message(seen, key, v, window_ms),
            # an erasure's forget is not an input message: only messages have outcomes
            lambda v, emits: None if deduplication.is_forget(v) else counters.count_input(emits),
        )
    )
    app.agent(hops[BY_WORKSPACE], name="type_custom_values", concurrency=1)(
        stateful(
            attribute_types,
            lambda reg, key, v: attribute_types_stage.on_custom_values(
                reg, key, v, settings.attributes, catalog, _now()
            ),
        )
    )
    app.agent(hops[BY_ANONYMOUS], name="link_devices", concurrency=1)(
        stateful(anonymous_ids, lambda rec, key, v: linking.on_anonymous_event(rec, key, v, _now()))
    )
    app.agent(hops[BY_PROFILE], name="assemble_profiles", concurrency=1)(
        stateful(profile_states, lambda rec, key, v: assembly.on_command(rec, key, v, _now()))
    )
    return app


def _table_sizes(tables: list[faust.Table]) -> dict[str, tuple[int, int]]:
    """Keys and bytes of each table's active partitions, from RocksDB's own estimates.

    Counting keys exactly would scan every partition on each scrape.
    """
    sizes = {}
    for table in tables:
        keys = nbytes = 0
        for db in table.data._dbs_for_actives():
            keys += db.property_int_value("rocksdb.estimate-num-keys") or 0
            nbytes += db.property_int_value("rocksdb.total-sst-files-size") or 0
            nbytes += db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0
        sizes[table.name] = (keys, nbytes)
    return sizes


def _serve_lookups(
    app: faust.App, settings: Settings, profile_states: faust.Table, anonymous_ids: faust.Table
) -> None:
    """The profile lookup pages (see streams.runtime.lookup), each answered by the owning worker."""
    topology = settings.topology()

    def owner(table: faust.Table, changelog: str, key: str) -> str | None:
        """URL of the worker holding ``key``; None when it is this one.

        Computed from the key's own bytes, as the agents' producer placed it: faust's router
        would JSON-encode a raw key first and pick the wrong worker.
        """
        partition = partition_for(key, settings.partitions)
        for url, topics in app.router.table_metadata(table.name).items():
            if partition in topics.get(changelog, ()):
                return None if url == str(app.conf.canonical_url) else url
        raise LookupError("partition not assigned")

    def refused(view: Any, request: Any) -> Any:
        if settings.api_token and request.headers.get("Authorization") != (
            f"Bearer {settings.api_token}"
        ):
            return view.json(
                {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        if app.rebalancing:
            return view.json({"error": "rebalancing"}, status=503, headers={"Retry-After": "2"})
        return None

    async def ask(view: Any, request: Any, url: str, path: str) -> Any:
        headers = {k: v for k, v in request.headers.items() if k == "Authorization"}
        async with app.http_client.get(f"{url}{path}", headers=headers) as response:
            return view.json(await response.json(), status=response.status)

    async def owned_profile(view: Any, request: Any, profile_id: str) -> Any:
        try:
            url = owner(profile_states, topology.profile_state_changelog.name, profile_id)
        except LookupError:
            return view.json({"error": "rebalancing"}, status=503, headers={"Retry-After": "2"})
        if url is not None:
            return await ask(view, request, url, f"/profiles/{profile_id}")
        found = lookup.profile_view(profile_states.get(profile_id), profile_id)
        if found is None:
            return view.json({"error": f"no profile {profile_id}"}, status=404)
        return view.json(found)

    @app.page("/profiles/{profile_id}")
    async def by_profile_id(view: Any, request: Any, profile_id: str) -> Any:
        """A profile by its profileId."""
        return refused(view, request) or await owned_profile(view, request, profile_id)

    @app.page("/workspaces/{workspace_id}/users/{user_id}")
    async def by_user_id(view: Any, request: Any, workspace_id: str, user_id: str) -> Any:
        """A known user's profile."""
        profile_id = lookup.user_profile_id(workspace_id, user_id)
        return refused(view, request) or await owned_profile(view, request, profile_id)

    @app.page("/workspaces/{workspace_id}/anonymous/{anonymous_id}")
    async def by_anonymous_id(view: Any, request: Any, workspace_id: str, anonymous_id: str) -> Any:
        """The profile holding a device: asked of the device's worker, then of the profile's."""
        if (stop := refused(view, request)) is not None:
            return stop
        key = lookup.device_key(workspace_id, anonymous_id)
        try:
            url = owner(anonymous_ids, topology.anonymous_ids_changelog.name, key)
        except LookupError:
            return view.json({"error": "rebalancing"}, status=503, headers={"Retry-After": "2"})
        if url is not None:
            return await ask(view, request, url, request.path)
        profile_id = lookup.device_profile_id(anonymous_ids.get(key), key)
        if profile_id is None:
            return view.json({"error": f"no device {anonymous_id}"}, status=404)
        return await owned_profile(view, request, profile_id)
