"""Message-id deduplication (WebEngage x-request-id): a retried call is applied once.

The first stage decodes and checks a message, then sends everything it decided, in one record
keyed by workspace and messageId, to this stage. Here the record is released only if the
messageId was not seen within the window (default 4 hours of event time). A redelivery of the
very same Kafka message (same topic, partition, offset) after a crash is not a duplicate: its
outputs may have been lost with the crash, so they are released again.
"""

from __future__ import annotations

from typing import Any

from streams.outcomes import Emit, Source

SeenRecord = dict[str, Any]  # {"ts": event time, "source": [topic, partition, offset]}
DEFAULT_WINDOW_MS = 4 * 3600 * 1000


def message_key(workspace_id: str, message_id: str) -> str:
    return f"{workspace_id}\x1f{message_id}"


def pack(emits: list[Emit], timestamp: int, source: Source) -> dict[str, Any]:
    """The first stage's decisions for one message, to be released by ``on_message``."""
    return {
        "emits": [[e.output, e.key, e.value] for e in emits],
        "ts": timestamp,
        "source": source.to_json(),
    }


def on_message(
    seen: SeenRecord | None, key: str, payload: dict[str, Any], window_ms: int = DEFAULT_WINDOW_MS
) -> tuple[SeenRecord, list[Emit]]:
    """Release a message's outputs, or nothing when it is a duplicate (no outputs at all)."""
    if (
        seen is not None
        and seen["source"] != payload["source"]
        and abs(payload["ts"] - seen["ts"]) <= window_ms
    ):
        return seen, []
    record = {"ts": payload["ts"], "source": payload["source"]}
    return record, [Emit(output, emit_key, value) for output, emit_key, value in payload["emits"]]
