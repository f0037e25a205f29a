"""The faust application of a worker: the App, its group, tables and pages; the stages come from
the declaration (topology.stages via streams.runtime.pipeline), each reading its input through
librdkafka under at-least-once processing; every stage is idempotent, so a redelivered message
changes nothing and its outputs are simply sent again.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST

from streams.runtime import (
    faust_internals,
    lookup,
    output_encoding,
    watchdog,
    writer_schemas,
)
from streams.runtime.accounting import Counters
from streams.runtime.attribute_firsts import AttributeFirsts
from streams.runtime.changelogs import Changelogs, ChangelogTable
from streams.runtime.delivery import Outbox
from streams.runtime.intake import HandledOffsets
from streams.runtime.pipeline import Pipeline
from streams.runtime.rerendering import Rechecks
from streams.runtime.settings import Security, Settings
from streams.runtime.worker_app import WorkerApp
from topology.stages import ANONYMOUS_IDS, PROFILE_STATE, STAGES, TABLES

# Per table partition (a worker holds 4 tables x its partitions). faust's defaults (64 MiB write
# buffers x 3, a 2 GiB block cache) are sized for one big table per process; these bound the
# worker's memory whatever the profile count, and the state itself stays on disk.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 8 * 2**20,
    "max_write_buffer_number": 2,
    "block_cache_size": 16 * 2**20,
}
# faust's own consumer reads nothing but changelog tails after a restore and its (empty) leader
# topic; each fetch of that topic comes back after this wait, all the time. At 10 ms (the stages'
# wait) an idle worker burnt 14 % of a core, 5 % at 100 ms, and under load those fetches took
# the GIL from the stages; a restored partition's tail waits at most this long for them.
FAUST_FETCH_MAX_WAIT_MS = 100


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


def build_app(settings: Settings) -> WorkerApp:
    """A worker's faust App for these settings (tables, pages, every declared stage)."""
    faust_internals.check()
    faust_internals.limit_fetch_wait(FAUST_FETCH_MAX_WAIT_MS)
    # Before anything starts: registers the output schemas, refusing incompatible ones.
    encode = output_encoding.encoder(settings)
    topology = settings.topology()
    app = WorkerApp(
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
        # A member learns of a rebalance from a heartbeat's answer, and the group waits for all
        # of them: a second worker process starting next to the first held both for ~3 s at
        # faust's 3 s interval, ~0.1-1.5 s at 1 s.
        broker_heartbeat_interval=min(1.0, settings.session_timeout_s / 3),
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
        Table=ChangelogTable,  # changelog records go out with each batch (runtime.changelogs)
    )
    counters = Counters()
    _serve_counters(app, counters)
    # A batch's records are handed to librdkafka in one loop, so a long linger gathers nothing
    # more, and the linger is paid once per hop. 1 ms against 5: p50 produce -> profile 32-42
    # against 71-95 ms at 300 events/s, equal at 1,000 (benchmarks.hops); 0 sent the first
    # record of each batch alone.
    outbox = Outbox(settings.kafka_config(), linger_ms=1)

    tables = {
        spec.name: app.Table(
            spec.name,
            partitions=settings.partitions,
            schema=faust.Schema(key_serializer="raw", value_serializer="json"),
            options=ROCKSDB_OPTIONS,
        )
        for spec in TABLES
    }
    changelogs = Changelogs(
        [tables[spec.name] for spec in TABLES], settings.kafka_config(), counters.count_restore
    )
    handled = HandledOffsets()
    policies = settings.policies()
    rendering = next(stage for stage in STAGES if stage.rerender is not None)
    rechecks = Rechecks(app, topology.stream(rendering.input).name, settings.partitions, outbox)
    firsts = AttributeFirsts(
        settings.kafka_config(), topology.attribute_firsts.name, policies.types, rechecks.want
    )
    pipeline = Pipeline(
        topology=topology,
        stages=STAGES,
        policies=policies,
        counters=counters,
        handled=handled,
        outbox=outbox,
        kafka_config=settings.kafka_config(),
        commit_interval_s=settings.commit_interval_s,
        changelogs=changelogs,
        batch_size=settings.batch_size,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        encode=encode,
        types_ready=firsts.ready,
        apply_firsts=firsts.apply,
        writer_schemas=writer_schemas.for_settings(settings.schema_registry, counters.registry),
    )
    pipeline.install(app, tables)

    @app.on_before_shutdown.connect
    def close_outbox(sender: faust.App, **kwargs: Any) -> None:
        """After the inputs let go (``on_stopping``, sent before this): every batch has awaited
        its outputs by then."""
        outbox.close()

    @app.task
    async def read_attribute_firsts() -> None:
        """Every worker reads them all (see streams.runtime.attribute_firsts)."""
        firsts.start(asyncio.get_running_loop())
        await rechecks.run(firsts.ready)

    @app.page("/settled/")
    async def settled(view: Any, request: Any) -> Any:
        """Answers once this worker has read every attribute-firsts record there is now and sent
        the rechecks they call for: with the group's lag at zero after that, every profile shows
        the decisions of its input (a test or a replay waits for this before reading outputs)."""
        await firsts.read_to_end()
        await rechecks.sent()
        return view.json({"settled": True})

    @app.on_before_shutdown.connect
    def stop_attribute_firsts(sender: faust.App, **kwargs: Any) -> None:
        firsts.stop()

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: faust.App, *args: Any, **kwargs: Any) -> None:
        for rerendering in pipeline.rerenderings:
            rerendering.forget_partitions()

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: faust.App, *args: Any, **kwargs: Any) -> None:
        firsts.catch_up()  # what moved here was rendered with what its last worker had read
        rechecks.want()  # and catches up even without input

    lookup.serve(
        app, settings, tables[PROFILE_STATE.name], tables[ANONYMOUS_IDS.name], policies.types
    )
    if settings.stall_timeout_s > 0:
        inputs = {topology.stream(stage.input).name for stage in STAGES}
        watchdog.install(app, inputs, handled, settings.stall_timeout_s, settings.kafka_config())
    counters.watch_tables(lambda: _table_sizes(list(tables.values())))
    return app


def _serve_counters(app: faust.App, counters: Counters) -> None:
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


def _table_sizes(tables: list[faust.Table]) -> dict[str, tuple[int, int]]:
    """Keys and bytes of each table's active partitions, from RocksDB's own estimates.

    Counting keys exactly would scan every partition on each scrape.
    """
    sizes = {}
    for table in tables:
        keys = nbytes = 0
        for db in faust_internals.active_stores(table):
            keys += db.property_int_value("rocksdb.estimate-num-keys") or 0
            nbytes += db.property_int_value("rocksdb.total-sst-files-size") or 0
            nbytes += db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0
        sizes[table.name] = (keys, nbytes)
    return sizes
