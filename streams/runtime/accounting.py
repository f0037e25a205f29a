"""Outcome counters and metrics: every input message ends applied (perhaps with a warning),
duplicate, or rejected, and the worker says how many of each.

Later stages can still refuse parts (a type mismatch, a refused merge); those are counted as
warnings by reason, so ``in = applied + applied_with_warning + duplicate + rejected`` holds per
worker and summed over workers. A message is counted where its outcome is decided: by the
stage that owns its event (where duplicates are found), or by the first stage if it rejects it.

The numbers live in one Prometheus registry per worker: ``/metrics`` exposes it as is and
``/counters/`` as a JSON summary.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from streams.rules.outcomes import MERGES, PROFILES, REJECTIONS, Emit, Outcome

OUTCOMES = ("in", "applied", "applied_with_warning", "duplicate", "rejected")

# name -> (estimated keys, bytes on disk) of the table partitions this worker serves
TableSizes = Callable[[], dict[str, tuple[int, int]]]


class _TableCollector(Collector):
    """Table sizes read when scraped: they are the store's to know, not ours to count."""

    def __init__(self, sizes: TableSizes) -> None:
        self._sizes = sizes

    def collect(self) -> Iterator[Metric]:
        keys = GaugeMetricFamily(
            "identity_stream_table_keys",
            "Estimated keys in the table partitions this worker serves (RocksDB's estimate)",
            labels=["table"],
        )
        size = GaugeMetricFamily(
            "identity_stream_table_bytes",
            "Bytes of the table partitions this worker serves (SST files and memtables)",
            labels=["table"],
        )
        for table, (count, nbytes) in sorted(self._sizes().items()):
            keys.add_metric([table], count)
            size.add_metric([table], nbytes)
        yield keys
        yield size


LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300)  # seconds, upper bounds
PUBLISHED = ("profile", "tombstone", "merge")


class _Tallies(Collector):
    """The counts taken for every message, as plain ints, exposed as Prometheus counters and a
    histogram when scraped.

    prometheus_client's ``Counter.inc`` and ``Histogram.observe`` take a lock each (they may be
    called from any thread): with a few per event that was ~4 % of a loaded worker's main thread.
    These are taken on the event loop's thread only; a scrape reads them whole (a dict copied
    under the interpreter lock).
    """

    def __init__(self) -> None:
        self.events = dict.fromkeys(OUTCOMES, 0)
        self.refusals: dict[tuple[str, str], int] = {}  # (reason, scope) -> records
        self.outputs = dict.fromkeys(PUBLISHED, 0)
        self.lag = [0] * (len(LAG_BUCKETS) + 1)  # observations per bucket, the last +Inf
        self.lag_sum = 0.0

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "identity_stream_events",
            "Input messages by outcome (in = the rest summed)",
            labels=["outcome"],
        )
        for outcome, count in list(self.events.items()):
            events.add_metric([outcome], count)
        yield events
        refusals = CounterMetricFamily(
            "identity_stream_refusals",
            "Rejection records by reason; scope=message refused it whole, part only a part",
            labels=["reason", "scope"],
        )
        for (reason, scope), count in list(self.refusals.items()):
            refusals.add_metric([reason, scope], count)
        yield refusals
        outputs = CounterMetricFamily(
            "identity_stream_outputs",
            "Records published: profiles, tombstones, merges",
            labels=["output"],
        )
        for output, count in list(self.outputs.items()):
            outputs.add_metric([output], count)
        yield outputs
        counts, total = list(self.lag), self.lag_sum
        cumulative = [sum(counts[: n + 1]) for n in range(len(counts))]
        bounds = [floatToGoString(bound) for bound in LAG_BUCKETS] + ["+Inf"]
        yield HistogramMetricFamily(
            "identity_stream_input_lag_seconds",
            "Time from an input message's Kafka timestamp to its routing",
            buckets=list(zip(bounds, cumulative, strict=True)),
            sum_value=total,
        )


class Counters:
    """The worker's counters (Prometheus metrics in a registry of their own)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._tallies = _Tallies()
        self.registry.register(self._tallies)
        self._rebalances = Counter(
            "identity_stream_rebalances", "Partition assignments received", registry=self.registry
        )
        self._restored_records = Counter(
            "identity_stream_restored_records",
            "Changelog records written into this worker's tables when it was given partitions",
            registry=self.registry,
        )
        self._restore_seconds = Counter(
            "identity_stream_restore_seconds",
            "Time spent restoring them",
            registry=self.registry,
        )

    def count_outcome(self, outcome: Outcome) -> None:
        """What became of one input message (decided by the step that settles it)."""
        events = self._tallies.events
        events["in"] += 1
        events[outcome] += 1

    def count_refusals(self, emits: list[Emit]) -> None:
        """Refusals of any stage, whole messages or parts."""
        for emit in emits:
            if emit.output == REJECTIONS:
                scope = "message" if emit.value["wholeMessage"] else "part"
                where = (emit.value["reason"], scope)
                refusals = self._tallies.refusals
                refusals[where] = refusals.get(where, 0) + 1

    def count_published(self, emit: Emit) -> None:
        """A record sent to an output topic (after coalescing, see outcomes.coalesce)."""
        if emit.output == PROFILES:
            self._tallies.outputs["tombstone" if emit.value is None else "profile"] += 1
        elif emit.output == MERGES:
            self._tallies.outputs["merge"] += 1

    def watch_tables(self, sizes: TableSizes) -> None:
        self.registry.register(_TableCollector(sizes))

    def count_restore(self, records: int, seconds: float) -> None:
        """A table's partitions restored from their changelog (streams.runtime.restore)."""
        self._restored_records.inc(records)
        self._restore_seconds.inc(seconds)

    def count_rebalance(self) -> None:
        self._rebalances.inc()

    def observe_input_lag(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        tallies = self._tallies
        tallies.lag[bisect_left(LAG_BUCKETS, seconds)] += 1
        tallies.lag_sum += seconds

    def prometheus(self) -> bytes:
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """The JSON summary served at /counters/."""
        summary: dict[str, Any] = dict(self._tallies.events)
        by_scope: dict[str, dict[str, int]] = {"message": {}, "part": {}}
        for (reason, scope), count in list(self._tallies.refusals.items()):
            by_scope[scope][reason] = count
        summary["rejected_by_reason"] = by_scope["message"]
        summary["warnings_by_reason"] = by_scope["part"]
        summary["restored_records"] = int(self._value("identity_stream_restored_records_total"))
        summary["restore_seconds"] = round(self._value("identity_stream_restore_seconds_total"), 3)
        summary["tables"] = {
            sample.labels["table"]: int(sample.value)
            for sample in self._samples("identity_stream_table_keys")
        }
        return summary

    def _samples(self, name: str) -> list[Any]:
        return [s for metric in self.registry.collect() for s in metric.samples if s.name == name]

    def _value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0
