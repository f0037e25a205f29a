"""Table partitions restored from their changelogs through librdkafka, in RocksDB write batches.

faust restores a table partition by consuming its changelog through its own consumer path, one
event object per record: about 4,000 records/s here, so a worker that lost its data dir took
minutes per million profiles to serve again. ``RestoringStore`` is faust's RocksDB store that,
when the group gives the worker a table partition, first reads the partition's changelog from
the offset the database holds (``persisted_offset``; nothing: the start) to its end with a
confluent-kafka consumer, and writes it in batches, each with the offset it reaches, atomically
(the same key faust keeps it under). faust's own recovery then starts from there and finds
nothing, or only what was written meanwhile, left to read.

This runs inside faust's rebalance, before its recovery looks at the offsets; the partitions
are not processed until recovery has finished either way.

The databases are written without RocksDB's write-ahead log: the changelog is the log. A put of
a 2 KB value through the WAL cost ~12 us of CPU, four times one without, and a table write is
one per changed key per commit interval. Every write skips it (the tables', the restores', the
persisted offset faust writes), so a crash loses a suffix of the writes, the offset with the
data it covers: the partition is then restored from the older offset that survived, exactly as
after a crash with records not yet on the changelog. A clean shutdown flushes what the memtables
hold (RocksDB does that on close when writes skipped the WAL).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import rocksdict
from confluent_kafka import Consumer, KafkaError, TopicPartition
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

from streams.runtime.intake import take

logger = logging.getLogger(__name__)

BATCH_RECORDS = 10_000  # per consume call, and at most per RocksDB write batch
CONSUME_WAIT_S = 0.05  # at most between two records (see intake.take)

OnRestored = Callable[[int, float], None]  # records, seconds


_WITHOUT_WAL = rocksdict.WriteOptions()
_WITHOUT_WAL.disable_wal = True


class RestoringStore(RocksDBStore):
    """faust's RocksDB store, restoring newly assigned partitions itself (module docstring).

    ``kafka_config`` and ``on_restored`` are set by the table that creates it.
    """

    kafka_config: dict[str, str]
    on_restored: OnRestored

    def _open_for_partition(self, partition: int) -> Any:
        db = super()._open_for_partition(partition)
        db.set_write_options(_WITHOUT_WAL)  # the changelog is the log (module docstring)
        return db

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        topic = self.table.changelog_topic_name
        # partitions close, or come back restored (ChangelogTable.forget)
        moved = {tp.partition for tp in revoked | newly_assigned if tp.topic == topic}
        self.table.forget(moved)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        opened = sorted(
            tp.partition for tp in newly_assigned if tp.topic == topic and tp.partition in self._dbs
        )
        if opened:
            await self._restore(topic, opened)
        self.table.forget(moved)  # a batch may have read a revoked partition meanwhile

    async def _restore(self, topic: str, partitions: list[int]) -> None:
        started = time.monotonic()
        consumer = Consumer(
            {
                **self.kafka_config,
                "group.id": f"restore-{uuid.uuid4().hex}",  # assigned, never joins or commits
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 10,
                "fetch.max.bytes": 64 * 2**20,
                "max.partition.fetch.bytes": 16 * 2**20,
            }
        )
        count = 0
        try:
            starts: list[TopicPartition] = []
            ends: dict[int, int] = {}  # the last offset to read, as the partition stands now
            for partition in partitions:
                low, high = await asyncio.to_thread(
                    consumer.get_watermark_offsets, TopicPartition(topic, partition), 30
                )
                held = self.persisted_offset(TP(topic, partition))
                start = max(low, 0 if held is None else held + 1)
                if start < high:
                    starts.append(TopicPartition(topic, partition, start))
                    ends[partition] = high - 1
            if not starts:
                return
            consumer.assign(starts)
            while ends:
                messages = await asyncio.to_thread(take, consumer, BATCH_RECORDS, CONSUME_WAIT_S)
                count += self._write(topic, messages, ends)
        finally:
            consumer.close()
        elapsed = time.monotonic() - started
        self.on_restored(count, elapsed)
        logger.info(
            "restored %d records of %s partitions %s in %.2fs (%.0f records/s)",
            count,
            topic,
            partitions,
            elapsed,
            count / elapsed if elapsed else 0.0,
        )

    def _write(self, topic: str, messages: list[Any], ends: dict[int, int]) -> int:
        """One write batch per partition, with the offset it reaches; partitions read to their
        end (or to an end-of-partition event, for a last offset no record holds) leave ``ends``."""
        batches: dict[int, rocksdict.WriteBatch] = {}
        reached: dict[int, int] = {}
        count = 0
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ends.pop(message.partition(), None)
                    continue
                raise RuntimeError(f"restoring {topic}: {error}")
            partition = message.partition()
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
            if message.value() is None:
                batch.delete(message.key())
            else:
                batch.put(message.key(), message.value())
            reached[partition] = message.offset()
            count += 1
            if message.offset() >= ends.get(partition, -1):
                ends.pop(partition, None)
        for partition, batch in batches.items():
            batch.put(self.offset_key, str(reached[partition]).encode())
            self._db_for_partition(partition).write(batch)
        return count
