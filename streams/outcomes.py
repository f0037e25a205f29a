"""What happened to an input message: the vocabulary shared by the rules and the agents."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refusal of a whole message (``whole``) or of one part of it (``subject``).

    ``reason`` is a stable code that dashboards and alerts key on; ``message`` is for people.
    """

    reason: str
    message: str
    subject: str | None = None
    whole: bool = True


@dataclass(frozen=True, slots=True)
class Source:
    """Where an input message came from, so a rejection can point back at it."""

    topic: str
    partition: int
    offset: int


def rejection_record(
    rejection: Rejection,
    source: Source,
    rejected_at: int,
    message_id: str | None = None,
    workspace_id: str | None = None,
    raw_value: bytes | None = None,
) -> dict[str, object]:
    """The Rejection Avro record; raw bytes are kept only for messages that could not be read."""
    return {
        "reason": rejection.reason,
        "message": rejection.message,
        "subject": rejection.subject,
        "wholeMessage": rejection.whole,
        "messageId": message_id,
        "workspaceId": workspace_id,
        "sourceTopic": source.topic,
        "sourcePartition": source.partition,
        "sourceOffset": source.offset,
        "rawValue": raw_value,
        "rejectedAt": rejected_at,
    }
