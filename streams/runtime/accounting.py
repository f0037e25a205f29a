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

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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


class Counters:
    """The worker's counters (Prometheus metrics in a registry of their own)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._events = Counter(
            "identity_stream_events",
            "Input messages by outcome (in = the rest summed)",
            ["outcome"],
            registry=self.registry,
        )
        self._refusals = Counter(
            "identity_stream_refusals",
            "Rejection records by reason; scope=message refused it whole, part only a part",
            ["reason", "scope"],
            registry=self.registry,
        )
        self._outputs = Counter(
            "identity_stream_outputs",
            "Records published: profiles, tombstones, merges",
            ["output"],
            registry=self.registry,
        )
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
        self._input_lag = Histogram(
            "identity_stream_input_lag_seconds",
            "Time from an input message's Kafka timestamp to its routing",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        # The children counted for every event, looked up once (labels() locks and hashes)
        self._by_outcome = {outcome: self._events.labels(outcome) for outcome in OUTCOMES}
        self._published = {
            kind: self._outputs.labels(kind) for kind in ("profile", "tombstone", "merge")
        }

    def count_outcome(self, outcome: Outcome) -> None:
        """What became of one input message (decided by the step that settles it)."""
        self._by_outcome["in"].inc()
        self._by_outcome[outcome].inc()

    def count_refusals(self, emits: list[Emit]) -> None:
        """Refusals of any stage, whole messages or parts."""
        for emit in emits:
            if emit.output == REJECTIONS:
                scope = "message" if emit.value["wholeMessage"] else "part"
                self._refusals.labels(emit.value["reason"], scope).inc()

    def count_published(self, emit: Emit) -> None:
        """A record sent to an output topic (after coalescing, see outcomes.coalesce)."""
        if emit.output == PROFILES:
            self._published["tombstone" if emit.value is None else "profile"].inc()
        elif emit.output == MERGES:
            self._published["merge"].inc()

    def watch_tables(self, sizes: TableSizes) -> None:
        self.registry.register(_TableCollector(sizes))

    def count_restore(self, records: int, seconds: float) -> None:
        """A table's partitions restored from their changelog (streams.runtime.restore)."""
        self._restored_records.inc(records)
        self._restore_seconds.inc(seconds)

    def count_rebalance(self) -> None:
        self._rebalances.inc()

    def observe_input_lag(self, seconds: float) -> None:
        self._input_lag.observe(max(seconds, 0.0))

    def prometheus(self) -> bytes:
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """The JSON summary served at /counters/."""
        summary: dict[str, Any] = {
            outcome: int(self._value("identity_stream_events_total", outcome=outcome))
            for outcome in OUTCOMES
        }
        by_scope: dict[str, dict[str, int]] = {"message": {}, "part": {}}
        for metric in self._refusals.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    by_scope[sample.labels["scope"]][sample.labels["reason"]] = int(sample.value)
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
