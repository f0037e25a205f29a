"""The faust behaviour the workarounds rely on, pinned on the installed faust-streaming.

When a faust upgrade fails here, the workaround in streams.runtime.faust_internals needs a new
look before the release joins ``VERIFIED``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging

import faust
import pytest
from faust.stores.rocksdb import Store as RocksDBStore
from faust.transport.drivers import aiokafka
from faust.types import TP

from streams.runtime import faust_internals

TOPIC = TP("identify-events-by-anonymous", 0)
INSTALLED = importlib.metadata.version("faust-streaming")


@pytest.fixture
def app(tmp_path) -> faust.App:
    """An unstarted App (nothing connects) whose tables live in RocksDB under ``tmp_path``."""
    return faust.App(
        "faust-internals-test",
        broker="kafka://127.0.0.1:1",
        store="rocksdb://",
        datadir=tmp_path,
        autodiscover=False,
    )


def test_a_partition_db_is_the_one_faust_serves_that_partition_from(app):
    table = app.Table("states", partitions=8)
    faust_internals.partition_db(table, 5).put(b'"a"', b"1")
    assert table.data["a"] == 1  # faust's own read (the lookup pages) finds it
    assert faust_internals.partition_db(table, 3).get(b'"a"') is None


def test_only_assigned_partitions_stores_are_active_and_owners_come_from_the_assignment(app):
    table = app.Table("states", partitions=8)
    faust_internals.partition_db(table, 5).put(b'"a"', b"1")
    assert faust_internals.active_stores(table) == []  # partition 5 is open, not assigned
    assert faust_internals.table_owners(app, "states") == {}


def test_committed_offset_is_none_before_any_commit():
    consumer = faust.App("committed-offset", broker="kafka://127.0.0.1:1").consumer
    assert faust_internals.committed_offset(consumer, TOPIC) is None
    consumer._committed_offset[TOPIC] = 13
    assert faust_internals.committed_offset(consumer, TOPIC) == 13


def test_flowing_waits_for_faust_to_resume_the_flow(app):
    """A stage handles nothing while a rebalance or a table recovery has the flow stopped."""
    consumer = app.consumer

    async def scenario() -> list[str]:
        seen: list[str] = []
        consumer.stop_flow()
        waiting = asyncio.ensure_future(faust_internals.flowing(app))
        await asyncio.sleep(0.01)
        seen.append("waiting" if not waiting.done() else "went on")
        consumer.resume_flow()
        await asyncio.wait_for(waiting, 1)
        seen.append("flowing")
        await asyncio.wait_for(faust_internals.flowing(app), 1)  # already flowing: at once
        return seen

    assert asyncio.run(scenario()) == ["waiting", "flowing"]


def test_recovery_is_not_completed_before_the_worker_started(app):
    assert not faust_internals.recovery_completed(app)


def test_the_internals_exist_on_the_installed_faust():
    app = faust.App("faust-internals-shape", broker="kafka://127.0.0.1:1")
    consumer = app.consumer
    assert isinstance(consumer, aiokafka.Consumer)
    assert hasattr(consumer, "_committed_offset")
    assert hasattr(consumer, "flow_active") and hasattr(consumer, "can_resume_flow")
    assert callable(RocksDBStore._dbs_for_actives)
    assert callable(app.router.table_metadata)


def test_the_installed_faust_is_verified():
    assert INSTALLED in faust_internals.VERIFIED
    faust_internals.check()


def test_an_unverified_release_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.16.0")
    monkeypatch.delenv(faust_internals.UNVERIFIED_ENV, raising=False)
    with pytest.raises(faust_internals.UnsupportedFaust) as refused:
        faust_internals.check()
    message = str(refused.value)
    assert "faust-streaming 0.16.0 is installed" in message
    assert INSTALLED in message
    assert "test_faust_internals.py" in message
    assert f"{faust_internals.UNVERIFIED_ENV}=1" in message


def test_the_escape_hatch_only_warns(monkeypatch, caplog):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.16.0")
    monkeypatch.setenv(faust_internals.UNVERIFIED_ENV, "1")
    with caplog.at_level(logging.WARNING, logger=faust_internals.__name__):
        faust_internals.check()
    assert "faust-streaming 0.16.0 is installed" in caplog.text


def test_a_missing_internal_is_refused_even_with_the_escape_hatch(monkeypatch):
    monkeypatch.delattr(RocksDBStore, "_dbs_for_actives")
    monkeypatch.setenv(faust_internals.UNVERIFIED_ENV, "1")
    with pytest.raises(faust_internals.UnsupportedFaust, match=r"Store\._dbs_for_actives"):
        faust_internals.check()


def test_a_consumer_without_flow_control_is_refused(monkeypatch):
    """The stages wait on faust's flow: a faust without it would let them run mid-recovery."""
    init = aiokafka.Consumer.__init__

    def without_flow_event(self, *args, **kwargs):
        init(self, *args, **kwargs)
        del self.can_resume_flow

    monkeypatch.setattr(aiokafka.Consumer, "__init__", without_flow_event)
    with pytest.raises(faust_internals.UnsupportedFaust, match="can_resume_flow"):
        faust_internals.check()


def test_limit_fetch_wait_caps_what_faust_asks_of_aiokafka():
    """faust passes fetch_max_wait_ms=1500 itself; the cap must win, and applying it twice must
    not stack subclasses."""
    before = aiokafka.aiokafka.AIOKafkaConsumer
    try:
        faust_internals.limit_fetch_wait(100)
        faust_internals.limit_fetch_wait(120)
        consumer_class = aiokafka.aiokafka.AIOKafkaConsumer
        assert consumer_class.__mro__[1] is getattr(before, "identity_stream_base", before)

        async def fetch_wait(asked: int) -> int:
            consumer = consumer_class(bootstrap_servers="127.0.0.1:1", fetch_max_wait_ms=asked)
            return consumer._fetch_max_wait_ms

        assert asyncio.run(fetch_wait(1500)) == 120
        assert asyncio.run(fetch_wait(50)) == 50
    finally:
        aiokafka.aiokafka.AIOKafkaConsumer = before


def test_a_topic_read_elsewhere_is_never_made_active(app):
    """The input partitions stay assigned to the group but out of faust's fetches."""
    faust_internals.never_fetch("read-elsewhere")
    consumer = app.consumer
    mine, other = TP("read-elsewhere", 0), TP("identify-events-by-anonymous", 0)
    assert consumer._set_active_tps({mine, other}) == {other}
    consumer.pause_partitions({other})
    consumer.resume_partitions({mine, other})  # as faust does when recovery ends
    assert consumer._get_active_partitions() == {other}
