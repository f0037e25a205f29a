"""Table writes held until the stage's next commit, then put straight into a partition's RocksDB,
their changelog records sent through librdkafka.

faust writes a table through the "current event" (a context variable naming the partition),
its codec registry and a key index, and sends a changelog record for every write through its
own producer path (``send_soon``, a future per record, aiokafka's record batches in Python),
writing each record's offset to RocksDB in the delivery callback: per event, up to three such
writes. A stage knows the partition of each message it handles, so here a flushed write encodes
the key and value once (JSON, as faust's codecs do), puts them into that partition's database
and appends the same bytes as its changelog record to the pending records; the batch that
flushes hands them to the ``Outbox`` with its outputs and awaits them too, so a commit still
never passes a state change that is not on its changelog. Then, once per changelog partition,
the highest offset delivered is stored where faust's recovery reads it
(``set_persisted_offset``, the same call faust makes).

The records are the ones faust would send: the same topic and partition (the message's), keys
and values JSON like the table's codecs, tombstones for deletions. Recovery and standbys
read them with faust's own code, unchanged.

Writes are held (``unflushed``) and written out when the stage commits (``flush``), as Kafka
Streams' record cache and quixstreams' transactions do: a key changed many times within a commit
interval is encoded, put and sent once (on the peers input, 44,500 table writes per 50,000
events became ~35,600, with ``HELD_LIMIT``). Reads see them first. Until the flush is on the
broker, the input that made them is not committed (``streams.runtime.intake``): a crash loses
them with the input offsets, which are read again.

A table also keeps the values it last read or wrote, decoded (``RecentValues``): a person's
events come in bursts, so most reads of a key that exists are of one read or written a batch or
two before (on the peers input, 58 % of all reads; the rest are new keys), and decoding its ~2 KB
of JSON again each time cost more than the step that used it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import faust
import orjson
from faust import stores
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

from streams.runtime.delivery import Record
from streams.runtime.faust_internals import partition_db
from streams.runtime.restore import OnRestored, RestoringStore

# Writes a table holds, at most, between two flushes: beyond, they are written out early. Held
# without a limit for 1 s commits, the worker's peak RSS on the peers input went 312 -> 603 MiB
# (326-372 with this one; table writes 31,200 per 50,000 events against ~35,600 with it).
HELD_LIMIT = 4_096

# faust's JSON codec (faust.utils.json with orjson) writes with these options
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z


class ChangelogTable(faust.Table):
    """A table the stages read and write by partition, each write leaving its changelog record
    in ``pending`` (module docstring); its RocksDB partitions restore themselves through
    librdkafka (``RestoringStore``).

    Created by ``faust.App(Table=ChangelogTable)``; ``Changelogs`` gives it ``pending`` (shared
    by all tables of a worker; the stages send and clear it with each batch), the Kafka settings
    and where restores are counted, before the worker starts.
    """

    pending: list[Record]
    kafka_config: dict[str, str]
    on_restored: OnRestored
    recent: RecentValues
    unflushed: dict[tuple[int, str], Any]  # written since the last flush, by (partition, key)

    def read(self, partition: int, key: str) -> Any:
        """The value of ``key`` in ``partition`` (None: none). The caller must not change it: it
        may be the very value a later read returns."""
        where = (partition, key)
        if where in self.unflushed:
            return self.unflushed[where]
        if where in self.recent.values:
            return self.recent.values[where]
        raw = partition_db(self, partition).get(table_json(key))
        value = None if raw is None else orjson.loads(raw)
        self.recent.keep(where, value)
        return value

    def items(self, partition: int) -> Iterator[tuple[str, Any]]:
        """Every (key, value) of ``partition``, decoded like ``read``, the unflushed writes
        included (faust iterates a table over all its active partitions only)."""
        held = {key: value for (p, key), value in self.unflushed.items() if p == partition}
        for raw_key, raw in partition_db(self, partition).items():
            if raw_key != RocksDBStore.offset_key:  # where faust keeps the changelog offset
                key = orjson.loads(raw_key)
                if key not in held:
                    yield key, orjson.loads(raw)
        for key, value in held.items():
            if value is not None:
                yield key, value

    def write(self, partition: int, key: str, value: Any) -> None:
        """Set ``key`` in ``partition`` (None: delete it) at the next ``flush``, or now when the
        table holds too much (``HELD_LIMIT``)."""
        where = (partition, key)
        self.unflushed[where] = value
        self.recent.keep(where, value)
        if len(self.unflushed) > HELD_LIMIT:
            self.flush()  # its input is still committed only after the stage's next flush

    def flush(self) -> None:
        """Put every unflushed write into its partition's RocksDB, and note its changelog
        record."""
        topic, pending = self.changelog_topic_name, self.pending
        for (partition, key), value in self.unflushed.items():
            db, raw_key = partition_db(self, partition), table_json(key)
            if value is None:
                db.delete(raw_key)
                pending.append(Record(topic, raw_key, None, partition))
            else:
                raw = table_json(value)
                db.put(raw_key, raw)
                pending.append(Record(topic, raw_key, raw, partition))
        self.unflushed.clear()

    def forget(self, partitions: set[int]) -> None:
        """Drop what ``partitions`` hold in memory: they were given up, or come back restored
        from their changelog (a rebalance). Their unflushed writes go too: the input that made
        them is not committed, so whoever reads the partitions next reads it again."""
        self.recent.clear()
        for where in [where for where in self.unflushed if where[0] in partitions]:
            del self.unflushed[where]

    def _new_store_by_url(self, url: Any) -> Any:
        """faust's store for ``url``; for RocksDB (the App's ``store="rocksdb://"``) the
        restoring one, built with the arguments faust gives its own."""
        if stores.by_url(url) is not RocksDBStore:
            return super()._new_store_by_url(url)
        store = RestoringStore(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )
        store.kafka_config = self.kafka_config
        store.on_restored = self.on_restored
        return store


class RecentValues:
    """The decoded values of the keys a table read or wrote last, at most ``limit`` of them
    (the oldest kept goes first).

    Only for the partitions as they are between two rebalances: a rebalance may close a
    partition, or hand it back restored from its changelog, so it empties them
    (``RestoringStore.on_rebalance``).
    """

    def __init__(self, limit: int = 2_048) -> None:
        self.limit = limit
        # Not a dict: taking a dict's first key walks past the slots of every key deleted
        # before it (until the dict is rebuilt), which made keeping a value cost 1.7 us, not 0.5.
        self.values: OrderedDict[tuple[int, str], Any] = OrderedDict()

    def keep(self, where: tuple[int, str], value: Any) -> None:
        values = self.values
        values[where] = value
        values.move_to_end(where)
        if len(values) > self.limit:
            values.popitem(last=False)

    def clear(self) -> None:
        self.values.clear()


def table_json(value: Any) -> bytes:
    """The bytes faust's codec writes for a table's key or value.

    The tables hold JSON the rules build, whose objects have only str keys: for those orjson
    writes the same bytes without ``OPT_NON_STR_KEYS``, 15-20 % faster (a tenth of a loaded
    worker's time went into encoding states). A value with other keys fails so, and is written
    with faust's options."""
    try:
        return orjson.dumps(value, option=orjson.OPT_UTC_Z)
    except TypeError:
        return orjson.dumps(value, option=_JSON_OPTIONS)


class Changelogs:
    """The pending changelog records of a worker's tables, and where their offsets go."""

    def __init__(
        self,
        tables: list[ChangelogTable],
        kafka_config: dict[str, str],
        on_restored: OnRestored,
    ) -> None:
        self.pending: list[Record] = []
        self._tables = {table.changelog_topic_name: table for table in tables}
        self._persisted: dict[tuple[str, int], int] = {}  # the highest offset recorded
        for table in tables:
            table.pending = self.pending
            table.recent = RecentValues()
            table.unflushed = {}
            table.kafka_config = kafka_config
            table.on_restored = on_restored

    def take(self) -> list[Record]:
        """The records written since the last take (the caller delivers them)."""
        taken = self.pending[:]
        self.pending.clear()
        return taken

    def persist(self, delivered: dict[tuple[str, int], int]) -> None:
        """Record, per changelog partition, the highest offset now on the broker: recovery
        resumes after it.

        A table's changelog records go out with its stage's batches, which the broker reports in
        order; still, a report of an offset at or below one already recorded never overwrites
        it (nor costs a RocksDB write).
        """
        for (topic, partition), offset in delivered.items():
            table = self._tables.get(topic)
            if table is not None and offset > self._persisted.get((topic, partition), -1):
                table.data.set_persisted_offset(TP(topic, partition), offset)
                self._persisted[(topic, partition)] = offset
