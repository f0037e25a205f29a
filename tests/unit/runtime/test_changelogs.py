"""Table writes by partition: the bytes faust's codecs would write, and their changelog records."""

from __future__ import annotations

import asyncio

import faust
import orjson
import pytest
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from streams.runtime import changelogs
from streams.runtime.changelogs import Changelogs, ChangelogTable, table_json
from streams.runtime.restore import RestoringStore


@pytest.fixture
def table(tmp_path) -> ChangelogTable:
    """A table of an unstarted App (nothing connects), in RocksDB under ``tmp_path``."""
    app = faust.App(
        "changelogs-test",
        broker="kafka://127.0.0.1:1",
        store="rocksdb://",
        datadir=tmp_path,
        autodiscover=False,
        Table=ChangelogTable,
    )
    states = app.Table("states", partitions=8)
    Changelogs([states], {"bootstrap.servers": "127.0.0.1:1"}, lambda records, seconds: None)
    return states


def test_a_write_is_read_back_in_its_partition_only(table):
    table.write(5, "a", {"city": "Oslo"})
    assert table.read(5, "a") == {"city": "Oslo"}
    assert table.read(3, "a") is None


def test_faust_reads_what_a_flushed_write_wrote(table):
    """faust's own API and codecs (its recovery, standbys) read what a flush wrote."""
    table.write(5, "ü", {"n": 1})
    table.flush()
    assert table.data["ü"] == {"n": 1}


def test_writes_are_held_until_the_flush_which_writes_each_key_once(table):
    topic = table.changelog_topic_name
    table.write(5, "a", {"n": 1})
    table.write(5, "a", {"n": 2})
    table.write(5, "b", {"n": 3})
    table.write(5, "b", None)
    assert table.read(5, "a") == {"n": 2} and table.read(5, "b") is None
    assert table.pending == [] and "a" not in table.data
    table.recent.clear()  # what was written reads back from the held writes, not a cache
    assert table.read(5, "a") == {"n": 2}
    table.flush()
    records = [(r.topic, r.key, r.value, r.partition) for r in table.pending]
    assert records == [(topic, b'"a"', b'{"n":2}', 5), (topic, b'"b"', None, 5)]
    assert table.data["a"] == {"n": 2} and "b" not in table.data
    table.flush()
    assert len(table.pending) == 2  # nothing held is written twice


def test_a_table_holding_too_many_writes_writes_them_out(table, monkeypatch):
    monkeypatch.setattr(changelogs, "HELD_LIMIT", 2)
    table.write(1, "a", 1)
    table.write(2, "b", 2)
    assert table.pending == []
    table.write(1, "c", 3)
    assert sorted(r.key for r in table.pending) == [b'"a"', b'"b"', b'"c"']
    assert table.unflushed == {} and table.data["c"] == 3


def test_the_changelogs_hand_their_records_over_once(table):
    changelogs = Changelogs([table], {}, lambda records, seconds: None)
    table.write(1, "a", 1)
    table.flush()
    assert len(changelogs.take()) == 1
    assert changelogs.take() == []


def test_rocksdb_tables_restore_themselves(table):
    assert isinstance(table.data, RestoringStore)


def test_a_partitions_items_come_back_as_written_without_fausts_offset(table):
    """Keys decoded as ``read`` takes them (a profile rendered again keeps its id)."""
    table.write(2, "a", {"n": 1})
    table.write(2, "\x00rendered", {})
    table.write(3, "b", 1)
    table.data.set_persisted_offset(TP(table.changelog_topic_name, 2), 7)
    assert sorted(table.items(2)) == [("\x00rendered", {}), ("a", {"n": 1})]  # held
    table.flush()
    assert sorted(table.items(2)) == [("\x00rendered", {}), ("a", {"n": 1})]  # written
    table.write(2, "a", None)
    table.write(2, "c", 3)
    assert sorted(table.items(2)) == [("\x00rendered", {}), ("c", 3)]  # both, held first


def test_a_late_report_of_an_older_offset_never_lowers_the_persisted_one(table):
    """Recovery resumes after the highest offset on the broker, whatever order reports come
    in."""
    changelogs = Changelogs([table], {}, lambda records, seconds: None)
    topic = table.changelog_topic_name
    changelogs.persist({(topic, 1): 64})
    changelogs.persist({(topic, 1): 33, (topic, 2): 5})
    assert table.data.persisted_offset(TP(topic, 1)) == 64
    assert table.data.persisted_offset(TP(topic, 2)) == 5


def test_recent_values_are_read_back_decoded_and_stay_bounded(table):
    table.recent.limit = 2
    for key in "abc":
        table.write(1, key, {"k": key})
    assert list(table.recent.values) == [(1, "b"), (1, "c")]  # the oldest went first
    table.flush()
    assert table.read(1, "a") == {"k": "a"}  # from RocksDB, and kept again
    assert list(table.recent.values) == [(1, "c"), (1, "a")]
    table.write(1, "c", None)
    assert table.read(1, "c") is None


def test_a_rebalance_forgets_the_recent_values_and_the_writes_held_for_moved_partitions(table):
    """The intake flushes before it gives partitions up; whatever a batch wrote to them after
    that belongs to input their next owner reads again."""
    table.write(1, "a", {"k": 1})
    table.write(2, "b", {"k": 2})
    asyncio.run(table.data.on_rebalance(set(), {TP(table.changelog_topic_name, 1)}, set()))
    assert table.recent.values == {}
    assert table.read(1, "a") is None and table.read(2, "b") == {"k": 2}


def test_table_writes_skip_rocksdb_write_ahead_log(table):
    """The changelog is the log (streams.runtime.restore): nothing goes to RocksDB's WAL."""
    table.write(5, "a", {"n": "x" * 10_000})
    table.flush()
    table.data.set_persisted_offset(TP(table.changelog_topic_name, 5), 7)
    wal = list(table.data.partition_path(5).glob("*.log"))
    assert wal and all(path.stat().st_size == 0 for path in wal)
    assert table.read(5, "a") == {"n": "x" * 10_000}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        # int keys: not JSON's, but faust's codec writes them
        | st.dictionaries(st.integers(-(2**63), 2**63 - 1), inner, min_size=1, max_size=3)
    ),
    max_leaves=20,
)


@given(_JSON)
def test_table_values_are_written_as_faust_writes_them(value):
    """The bytes are faust's codec's (orjson with these options), whatever the keys."""
    faust_options = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z
    assert table_json(value) == orjson.dumps(value, option=faust_options)
