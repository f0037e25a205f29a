"""Message-id deduplication (WebEngage x-request-id): a retried call is applied once.

The first stage decodes and checks a message, then sends everything it decided, in one record
keyed by workspace and messageId, to this stage. Here the record is released only if the
messageId was not seen within the window (default 4 hours of event time). A redelivery of the
very same Kafka message (same topic, partition, offset) after a crash is not a duplicate: its
outputs may have been lost with the crash, so they are released again.

An erasure removes the person's entries too: the linking and assembly stages remember the
messageIds of the events they applied (the newest ``REMEMBERED`` per record) and, when erased,
send a ``FORGET`` for each one to this stage.
"""

from __future__ import annotations

import bisect
from typing import Any

from streams.rules.outcomes import BY_MESSAGE, Emit, Source

SeenRecord = dict[str, Any]  # {"ts": event time, "source": [topic, partition, offset]}
DEFAULT_WINDOW_MS = 4 * 3600 * 1000
FORGET: dict[str, Any] = {"forget": True}
# [[event time, messageId], ...] in stamp order; bounded, since it rides in every record write
Remembered = list[list[Any]]
REMEMBERED = 64  # a constant per record: its state must not grow with its history


def message_key(workspace_id: str, message_id: str) -> str:
    return f"{workspace_id}\x1f{message_id}"


def pack(emits: list[Emit], timestamp: int, source: Source) -> dict[str, Any]:
    """The first stage's decisions for one message, to be released by ``on_message``."""
    return {
        "emits": [[e.output, e.key, e.value] for e in emits],
        "ts": timestamp,
        "source": source.to_json(),
    }


def remember(remembered: Remembered | None, timestamp: int, message_id: str) -> Remembered:
    """The messageIds of a record's events, with this one (an erasure forgets their entries)."""
    remembered = list(remembered or [])
    entry = [timestamp, message_id]
    at = bisect.bisect_left(remembered, entry)
    if at == len(remembered) or remembered[at] != entry:
        remembered.insert(at, entry)
    return remembered[-REMEMBERED:]


def forget(
    remembered: Remembered | None, workspace_id: str, floor: list[Any]
) -> tuple[Remembered, list[Emit]]:
    """Drop the entries an erasure covers; keep (and say nothing of) the later ones."""
    remembered = remembered or []
    kept = [entry for entry in remembered if entry > floor]
    gone = [entry[1] for entry in remembered if entry <= floor]
    return kept, [Emit(BY_MESSAGE, message_key(workspace_id, m), FORGET) for m in gone]


def is_forget(payload: dict[str, Any]) -> bool:
    """An erasure's request, not an input message: it has no outcome to count."""
    return "forget" in payload


def on_message(
    seen: SeenRecord | None, key: str, payload: dict[str, Any], window_ms: int = DEFAULT_WINDOW_MS
) -> tuple[SeenRecord | None, list[Emit]]:
    """Release a message's outputs, or nothing when it is a duplicate (no outputs at all)."""
    if is_forget(payload):
        return None, []
    if (
        seen is not None
        and seen["source"] != payload["source"]
        and abs(payload["ts"] - seen["ts"]) <= window_ms
    ):
        return seen, []
    record = {"ts": payload["ts"], "source": payload["source"]}
    return record, [Emit(output, emit_key, value) for output, emit_key, value in payload["emits"]]
