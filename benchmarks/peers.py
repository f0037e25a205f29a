"""The peers table and chart of the README, from runs of `../shared/peers/run.py`.

    python -m benchmarks.peers /tmp/peers/results/run-A.json [run-B.json ...]

Each system of each run becomes a row (identity-stream with several worker processes is named
so); the rows go to ``benchmarks/results/peers.json`` and ``peers.png`` and are printed as the
Markdown table the README shows. Runs of one input (same ``--events`` and seed) only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.charts import peers_chart
from benchmarks.run import RESULTS


def rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table: list[dict[str, Any]] = []
    for run in runs:
        events = run["workload"]["events"]
        for result in run["results"]:
            if result["status"] != "done":
                continue
            label = result["system"]
            if label == "identity-stream" and result["processes"] > 1:
                label += f" ({result['processes'] - 1} processes)"  # and their parent
            if any(row["label"] == label for row in table):
                label += " (again)"  # the harness runs the ceiling first and last
            table.append(
                {
                    "label": label,
                    "run": run["run_id"],
                    "events": events,
                    "events_per_s": round(result["events_per_s_output"]),
                    "events_per_s_commit": round(result["events_per_s_commit"]),
                    "cpu_ms_per_event": round(result["system_cpu_s"] * 1000 / events, 3),
                    "peak_rss_mib": result["peak_rss_mib"],
                }
            )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    table = rows([json.loads(path.read_text()) for path in args.runs])
    (RESULTS / "peers.json").write_text(json.dumps(table, indent=2) + "\n")
    peers_chart(table, RESULTS / "peers.png")
    print("| system | events/s (output) | events/s (commit) | CPU per event | peak RSS |")
    print("|---|---|---|---|---|")
    for row in table:
        print(
            f"| {row['label']} | {row['events_per_s']:,} | {row['events_per_s_commit']:,} | "
            f"{row['cpu_ms_per_event']} ms | {row['peak_rss_mib']:.0f} MiB |"
        )


if __name__ == "__main__":
    main()
