"""Read the identify payloads of a file: JSON Lines (or one JSON object per line) and CSV.

The reading is all that is left here; what a payload means is ``streams.rules.mapping``'s, the
same mapping the worker applies to JSON on the input topic. In CSV, a column per field and
``attributes.<name>`` (or ``custom.<name>``) for custom attributes; cells keep the JSON type they
look like, except identifiers and phone numbers, which stay text.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streams.rules.mapping import Unmappable

TEXT_COLUMNS = ("userId", "anonymousId", "messageId", "workspaceId", "phone")


def _csv_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def read_payloads(path: Path) -> Iterator[tuple[int, dict[str, Any] | Unmappable]]:
    """(line number, payload or the reason it is unusable) for a .jsonl/.json or .csv file."""
    with path.open(newline="") as handle:
        if path.suffix.lower() == ".csv":
            for number, row in enumerate(csv.DictReader(handle), start=2):
                payload: dict[str, Any] = {}
                for column, cell in row.items():
                    if cell in (None, ""):
                        continue
                    if column.startswith(("attributes.", "custom.")):
                        payload.setdefault("attributes", {})[column.split(".", 1)[1]] = _csv_value(
                            cell
                        )
                    elif column in TEXT_COLUMNS:
                        payload[column] = cell
                    else:
                        payload[column] = _csv_value(cell)
                yield number, payload
            return
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                parsed = json.loads(line)
            except ValueError as exc:
                yield number, Unmappable("undecodable", f"not JSON: {exc}")
                continue
            if not isinstance(parsed, dict):
                yield number, Unmappable("unrecognised_json", "not a JSON object")
                continue
            yield number, parsed
