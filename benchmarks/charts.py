"""The PNG charts of `make bench` and `make bench-scale`, drawn from their JSON results."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a build machine

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, MaxNLocator


def bench_chart(runs: list[dict[str, Any]], path: Path) -> Path:
    """Throughput against the pass-through ceiling, and probe latency, per worker count."""
    labels = [f"{r['workload']['workers']} process(es)" for r in runs]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    ours = [r["throughput_events_per_s"] for r in runs]
    ceiling = [r["ceiling_events_per_s"] for r in runs]
    left.bar(labels, ceiling, color="#c8c8c8", label="pass-through ceiling")
    left.bar(labels, ours, color="#1f77b4", label="identity-stream")
    for x, (run, value, top) in enumerate(zip(runs, ours, ceiling, strict=True)):
        left.annotate(
            f"{value:,.0f}/s\n{value / top:.0%}\n{run['cpu_ms_per_event']} ms CPU/event",
            (x, value),
            ha="center",
            va="bottom",
        )
    left.set_ylabel("events/s, end to end")
    left.set_title("Throughput")
    left.legend(loc="upper right")
    width = 0.35
    for shift, key in ((-width / 2, "p50"), (width / 2, "p99")):
        xs = [x + shift for x in range(len(runs))]
        right.bar(xs, [r["latency_ms"][key] or 0 for r in runs], width, label=key)
    right.set_xticks(range(len(runs)), labels)
    right.set_ylabel("ms, produce to profile on the output topic")
    right.set_title("Latency, under half the measured load")
    right.legend()
    workload = runs[0]["workload"]
    figure.suptitle(
        f"{workload['events']:,} events, {workload['people']:,} people, "
        f"{workload['partitions']} partitions"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def scale_chart(results: dict[str, Any], path: Path) -> Path:
    """Throughput and memory over one long run, against events and profiles."""
    samples = results["samples"]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    events = [s["events"] for s in samples]
    rates = [
        (b["events"], (b["events"] - a["events"]) / (b["seconds"] - a["seconds"]))
        for a, b in itertools.pairwise(samples)
        if b["seconds"] > a["seconds"]
    ]
    top.plot([e for e, _ in rates], [r for _, r in rates], color="#1f77b4", linewidth=0.8)
    top.set_ylabel("events/s (per sample)")
    top.set_ylim(bottom=0)
    top.set_title("Throughput as the stream grows")
    bottom.plot(events, [s["rss_mib"] for s in samples], label="worker RSS (MiB)")
    bottom.plot(events, [s["rocksdb_mib"] for s in samples], label="RocksDB on disk (MiB)")
    bottom.set_xlabel("input events processed (every stage committed)")
    bottom.set_ylabel("MiB")
    bottom.set_ylim(bottom=0)
    twin = bottom.twinx()
    twin.plot(events, [s["profiles"] for s in samples], color="#2ca02c", linestyle=":")
    twin.set_ylabel("profiles in the table (dotted)")
    twin.set_ylim(bottom=0)
    bottom.legend(loc="upper left")
    bottom.set_title("Memory levels off once RocksDB buffers fill; profiles accumulate on disk")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def peers_chart(rows: list[dict[str, Any]], path: Path) -> Path:
    """Events/s and CPU per event of each system of one peers-harness input, side by side.

    The pass-through ceiling runs 10-20x faster than any system: on a scale that holds it the
    systems' bars, which are what the chart compares, would be slivers. The scale is set by the
    systems; a bar beyond it is cut at the edge and says its value."""
    ys = range(len(rows))
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(11, max(4.0, 1.0 + 0.24 * len(rows))), sharey=True
    )
    for axis, key, color, label, fmt in (
        (left, "events_per_s", "#1f77b4", "events/s (to the last output)", "{:,.0f}"),
        (right, "cpu_ms_per_event", "#ff7f0e", "CPU ms per event (all its processes)", "{}"),
    ):
        values = [row[key] for row in rows]
        systems = [row[key] for row in rows if not row["label"].startswith("ceiling")]
        limit = max(systems or values) * 1.3
        axis.barh(ys, [min(value, limit) for value in values], color=color)
        axis.set_xlabel(label)
        axis.set_xlim(0, limit)
        axis.xaxis.set_major_locator(MaxNLocator(5))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.6g}"))
        for y, value in zip(ys, values, strict=True):
            beyond = value > limit
            axis.annotate(
                fmt.format(value) + (" (off scale)" if beyond else ""),
                (min(value, limit), y),
                xytext=(-3 if beyond else 3, 0),
                textcoords="offset points",
                ha="right" if beyond else "left",
                va="center",
                color="white" if beyond else "black",
            )
    left.set_yticks(list(ys), [row["label"] for row in rows])
    left.invert_yaxis()
    figure.suptitle(f"{rows[0]['events']:,} identify events, 4 partitions, one broker, 2 cores")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
