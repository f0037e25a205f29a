"""Table writes by partition: the bytes faust's codecs would write, and their changelog records."""

from __future__ import annotations

import asyncio

import faust
import orjson
import pytest
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

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


def test_faust_reads_what_a_write_wrote(table):
    """The lookup pages read tables through faust's own API and codecs."""
    table.write(5, "ü", {"n": 1})
    assert table.data["ü"] == {"n": 1}


def test_each_write_leaves_its_changelog_record_and_a_delete_a_tombstone(table):
    table.write(5, "a", {"n": 1})
    table.write(5, "a", None)
    records = [(r.topic, r.key, r.value, r.partition) for r in table.pending]
    topic = table.changelog_topic_name
    assert records == [(topic, b'"a"', b'{"n":1}', 5), (topic, b'"a"', None, 5)]
    assert table.read(5, "a") is None


def test_the_changelogs_hand_their_records_over_once(table):
    changelogs = Changelogs([table], {}, lambda records, seconds: None)
    table.write(1, "a", 1)
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
    assert sorted(table.items(2)) == [("\x00rendered", {}), ("a", {"n": 1})]


def test_a_late_report_of_an_older_offset_never_lowers_the_persisted_one(table):
    """A rendering mark sent on its own may be reported after a later batch of its partition:
    recovery must still resume after the highest offset on the broker."""
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
    assert table.read(1, "a") == {"k": "a"}  # from RocksDB, and kept again
    assert list(table.recent.values) == [(1, "c"), (1, "a")]
    table.write(1, "c", None)
    assert table.read(1, "c") is None


def test_a_rebalance_forgets_the_recent_values(table):
    table.write(1, "a", {"k": 1})
    asyncio.run(table.data.on_rebalance(set(), {TP(table.changelog_topic_name, 1)}, set()))
    assert table.recent.values == {}


def test_table_writes_skip_rocksdb_write_ahead_log(table):
    """The changelog is the log (streams.runtime.restore): nothing goes to RocksDB's WAL."""
    table.write(5, "a", {"n": "x" * 10_000})
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
