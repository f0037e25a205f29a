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
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka
from faust.types import TP
from intervaltree import IntervalTree

from streams.runtime import commit_guard, faust_internals

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


def test_fausts_commit_asks_the_installed_commit_point(monkeypatch):
    # registers the current commit point (perhaps the guard) to be put back after the test
    monkeypatch.setattr(Consumer, "_new_offset", Consumer._new_offset)
    faust_internals.install_commit_point(lambda consumer, tp: 7)
    consumer = faust.App("commit-point", broker="kafka://127.0.0.1:1").consumer
    assert consumer._filter_committable_offsets([TOPIC]) == {TOPIC: 7}


def test_faust_commits_the_first_run_of_acked_offsets_and_forgets_it():
    consumer = faust.App("faust-commit-point", broker="kafka://127.0.0.1:1").consumer
    assert faust_internals.committed_offset(consumer, TOPIC) is None
    before = faust_internals.acked_bookkeeping(consumer, TOPIC)
    assert (before.acked, before.index, before.gaps) == ([], set(), IntervalTree())
    consumer._acked[TOPIC] = [10, 11, 12, 20]
    consumer._acked_index[TOPIC] = {10, 11, 12, 20}
    saved = faust_internals.acked_bookkeeping(consumer, TOPIC)
    assert faust_internals.acked_count(consumer, TOPIC) == 4

    assert faust_internals.faust_commit_point(consumer, TOPIC) == 13
    assert faust_internals.acked_bookkeeping(consumer, TOPIC).acked == [20]

    saved.restore_from(12)  # a commit held at 12 gives 12 back
    after = faust_internals.acked_bookkeeping(consumer, TOPIC)
    assert (after.acked, after.index) == ([12, 20], {12, 20})


def test_recovery_is_not_completed_before_the_worker_started(app):
    assert not faust_internals.recovery_completed(app)


def test_the_internals_exist_on_the_installed_faust():
    app = faust.App("faust-internals-shape", broker="kafka://127.0.0.1:1")
    consumer = app.consumer
    assert isinstance(consumer, aiokafka.Consumer)
    for name in ("_acked", "_acked_index", "_gap", "_committed_offset"):
        assert hasattr(consumer, name)
    assert "_new_offset" not in vars(aiokafka.Consumer)  # so the base class's is the one asked
    assert callable(RocksDBStore._dbs_for_actives)
    assert callable(app.router.table_metadata)


def test_the_installed_faust_is_verified():
    assert INSTALLED in faust_internals.VERIFIED
    faust_internals.check()


def test_check_passes_with_the_commit_guard_installed():
    commit_guard.guard(faust.App("guarded-check", broker="kafka://127.0.0.1:1"))
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


def test_a_commit_point_of_another_shape_is_refused(monkeypatch):
    monkeypatch.setattr(faust_internals, "_faust_new_offset", lambda self, tp, force: None)
    with pytest.raises(faust_internals.UnsupportedFaust, match=r"_new_offset\(self, tp\)"):
        faust_internals.check()


def test_a_transport_with_its_own_commit_point_is_refused(monkeypatch):
    """Replacing the base class's commit point would silently not guard such a consumer."""
    monkeypatch.setattr(aiokafka.Consumer, "_new_offset", lambda self, tp: None, raising=False)
    with pytest.raises(faust_internals.UnsupportedFaust, match="not its own"):
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
