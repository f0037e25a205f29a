"""Every use of faust-streaming's private API, in one place, checked at start-up.

The runtime needs a few things faust does not offer publicly: a table partition's RocksDB
database, the router's table metadata, a table's open RocksDB partitions, the offset a
partition was seeked to, whether table recovery has finished and messages may flow, committing
offsets of its choosing, and topics faust is assigned but never fetches. Each is a function
here, so a faust upgrade that moves one breaks one module and one set of tests
(tests/unit/runtime/test_faust_internals.py), and ``check`` refuses to start on a
faust-streaming release these were not verified on.

``app.rebalancing`` and ``app.consumer_generation_id`` are not here: faust declares them on its
public ``AppT`` interface.

The private names are looked up when used rather than imported, so that a faust without one
still imports this module and ``check`` can say what is missing.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import os
import time
from typing import Any

import faust
from faust.stores.rocksdb import Store as RocksDBStore
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

VERIFIED = frozenset({"0.15.3"})
UNVERIFIED_ENV = "IDENTITY_STREAM_UNVERIFIED_FAUST"

logger = logging.getLogger(__name__)


class UnsupportedFaust(RuntimeError):
    """The installed faust-streaming is not one the workarounds in this module were verified on."""


def table_owners(app: faust.App, table: str) -> dict[str, dict[str, Any]]:
    """Worker URL -> {changelog topic: partitions} for ``table``, from the group's assignment."""
    return app.router.table_metadata(table)


def active_stores(table: faust.Table) -> list[Any]:
    """The RocksDB databases (rocksdict) of the table partitions this worker serves."""
    return list(table.data._dbs_for_actives())


def partition_db(table: faust.Table, partition: int) -> Any:
    """The RocksDB database (rocksdict, raw bytes) of one partition of a table this worker
    serves.

    faust reads and writes a table in the partition of the "current event", a context variable
    its per-message iteration sets, through its codec registry and a key index; a stage that
    handles a batch knows each message's partition and writes its table there directly
    (streams.runtime.changelogs), as faust's own changelog recovery does.
    """
    return table.data._db_for_partition(partition)


def limit_fetch_wait(max_wait_ms: int) -> None:
    """Make faust's aiokafka consumers wait at most ``max_wait_ms`` in a fetch.

    faust 0.15.3 creates them with ``fetch_max_wait_ms=1500`` and no setting for it. The stages
    read their inputs through librdkafka (streams.runtime.intake); faust's consumer still reads
    the tail of a changelog after a restore, where a partition just drained waited for the fetch
    in flight to come back, up to 1.5 s. Fetches still return as soon as any data is there.
    """
    created = aiokafka_driver.aiokafka.AIOKafkaConsumer
    base = getattr(created, "identity_stream_base", created)

    class BoundedWaitConsumer(base):  # type: ignore[misc, valid-type]
        identity_stream_base = base

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["fetch_max_wait_ms"] = min(kwargs.get("fetch_max_wait_ms", 500), max_wait_ms)
            super().__init__(*args, **kwargs)

    aiokafka_driver.aiokafka.AIOKafkaConsumer = BoundedWaitConsumer


_read_elsewhere: set[str] = set()  # topics faust is assigned but never fetches (never_fetch)


def never_fetch(topic: str) -> None:
    """Keep faust from ever handing out messages of ``topic``, while its group still assigns
    the topic's partitions (and so decides which worker reads them, elsewhere).

    faust fetches the partitions it holds "active": all assigned ones, less those it paused
    (during recovery), and it resumes them all once recovery ends. So both ways into that set
    leave ``topic`` out, and faust's liveness check, which would report the partitions as never
    fetched, skips them. aiokafka may still prefetch one buffer per partition; it is never read.
    """
    _read_elsewhere.add(topic)
    if getattr(Consumer, "identity_stream_never_fetch", False):
        return
    set_active, resume, verify = (
        Consumer._set_active_tps,
        Consumer.resume_partitions,
        Consumer.verify_all_partitions_active,
    )

    def _set_active_tps(self: Consumer, tps: set[TP]) -> set[TP]:
        return set_active(self, {tp for tp in tps if tp.topic not in _read_elsewhere})

    def resume_partitions(self: Consumer, tps: Any) -> None:
        resume(self, [tp for tp in tps if tp.topic not in _read_elsewhere])

    async def verify_all_partitions_active(self: Consumer) -> None:
        now = time.monotonic()
        for tp in self.assignment():
            await self.sleep(0)
            if not self.should_stop and tp.topic not in _read_elsewhere:
                self.verify_event_path(now, tp)

    assert verify is not None  # replaced below; check() verifies it exists
    Consumer._set_active_tps = _set_active_tps  # type: ignore[method-assign]
    Consumer.resume_partitions = resume_partitions  # type: ignore[method-assign]
    Consumer.verify_all_partitions_active = verify_all_partitions_active  # type: ignore[method-assign]
    Consumer.identity_stream_never_fetch = True  # type: ignore[attr-defined]


async def commit_offsets(consumer: Consumer, offsets: dict[TP, int]) -> bool:
    """Commit ``offsets`` in faust's group, as faust commits its own (those of partitions no
    longer assigned are discarded; faust's committed-offset bookkeeping follows)."""
    return await consumer._commit_offsets(offsets)


async def flowing(app: faust.App) -> None:
    """Until the app's consumer lets messages flow: not during a rebalance, not before table
    recovery has finished (faust stops the flow when a rebalance starts and resumes it once
    every table partition the worker was given is restored)."""
    consumer = app.consumer
    while not consumer.flow_active:
        await consumer.can_resume_flow.wait()


def committed_offset(consumer: Consumer, tp: TP) -> int | None:
    """The offset ``tp`` was last committed at, as the consumer knows it (None: never).

    It is where the current generation started reading; faust's public ``committed`` asks the
    broker, which a timer that must keep working while the broker is away cannot rely on.
    """
    return consumer._committed_offset[tp]


def recovery_completed(app: faust.App) -> bool:
    """Whether table recovery finished and the input partitions are flowing again.

    faust's public ``wait_until_recovery_completed`` blocks until it is; a periodic check must
    not wait.
    """
    return app.tables.recovery.completed.is_set()


def check() -> None:
    """Refuse to start on a faust-streaming these internals were not verified on.

    Raises ``UnsupportedFaust`` when the installed release is not in ``VERIFIED``, or when any
    private name this module uses is missing or changed shape. Setting the environment variable
    ``IDENTITY_STREAM_UNVERIFIED_FAUST=1`` turns the first into a logged warning, for trying a
    new release; the second is always an error, since the worker could not run without them.
    """
    installed = importlib.metadata.version("faust-streaming")
    verified = ", ".join(sorted(VERIFIED))
    advice = (
        f"Pin faust-streaming to a verified release ({verified}), or verify this one and add it "
        f"to VERIFIED in {__name__}: run tests/unit/runtime/test_faust_internals.py and the "
        "fault suite (make chaos)."
    )
    missing = _missing_internals()
    if missing:
        raise UnsupportedFaust(
            f"faust-streaming {installed} lacks internals this worker relies on: "
            f"{'; '.join(missing)}. {advice}"
        )
    if installed in VERIFIED:
        return
    message = (
        f"faust-streaming {installed} is installed; the faust internals this worker relies on "
        f"were verified on {verified} only. {advice}"
    )
    if os.environ.get(UNVERIFIED_ENV) == "1":
        logger.warning("%s Starting anyway (%s=1).", message, UNVERIFIED_ENV)
        return
    raise UnsupportedFaust(f"{message} To start anyway, set {UNVERIFIED_ENV}=1.")


def _missing_internals() -> list[str]:
    """Each private name this module uses that the installed faust lacks, described."""
    app = faust.App("faust-internals-check", autodiscover=False)  # never started: no I/O
    consumer = app.consumer
    tables = app.tables
    present = {
        "app.router.table_metadata": hasattr(app.router, "table_metadata"),
        "faust.transport.drivers.aiokafka creating aiokafka.AIOKafkaConsumer(fetch_max_wait_ms)": (
            "fetch_max_wait_ms"
            in inspect.signature(aiokafka_driver.aiokafka.AIOKafkaConsumer.__init__).parameters
        ),
        "faust.stores.rocksdb.Store._dbs_for_actives": hasattr(RocksDBStore, "_dbs_for_actives"),
        "faust.stores.rocksdb.Store._db_for_partition, offset_key": all(
            hasattr(RocksDBStore, name) for name in ("_db_for_partition", "offset_key")
        ),
        "app.tables.recovery.completed": hasattr(getattr(tables, "recovery", None), "completed"),
        "Consumer().flow_active, can_resume_flow": all(
            hasattr(consumer, name) for name in ("flow_active", "can_resume_flow")
        ),
        "Consumer._set_active_tps, resume_partitions, verify_all_partitions_active, "
        "_commit_offsets": all(
            hasattr(Consumer, name)
            for name in (
                "_set_active_tps",
                "resume_partitions",
                "verify_all_partitions_active",
                "_commit_offsets",
            )
        ),
    }
    present["Consumer()._committed_offset"] = hasattr(consumer, "_committed_offset")
    return [name for name, found in present.items() if not found]
