"""First stage: from raw input bytes to (profile key, event) or rejections. No Kafka in here.

Producers key input however they like, so the first stage decodes, checks and re-keys every event
by the profile it belongs to; the second stage (the fold) then sees all events of a profile on one
partition, next to that profile's table partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.events import parse_identify, to_json
from streams.identity import DEFAULT_BLOCKLIST, Blocklist, target_profile_id
from streams.outcomes import Rejection
from topology.avro import IDENTIFY_EVENT, AvroDecodeError


@dataclass(frozen=True, slots=True)
class Routed:
    """Outcome of the first stage for one input message."""

    profile_id: str | None = None
    event: dict[str, Any] | None = None
    rejections: list[Rejection] = field(default_factory=list)
    message_id: str | None = None
    workspace_id: str | None = None
    undecodable: bool = False


def route(raw: bytes | None, blocklist: Blocklist = DEFAULT_BLOCKLIST) -> Routed:
    """Decode and check one input message and say which profile it folds into.

    Never raises: a message that trips an unforeseen error is rejected with its raw bytes (reason
    ``processing_error``) instead of stopping the partition behind it.
    """
    try:
        return _route(raw, blocklist)
    except AvroDecodeError as exc:
        return Routed(rejections=[Rejection(exc.reason, str(exc))], undecodable=True)
    except Exception as exc:
        failure = Rejection("processing_error", f"{type(exc).__name__}: {exc}")
        return Routed(rejections=[failure], undecodable=True)


def _route(raw: bytes | None, blocklist: Blocklist) -> Routed:
    record = IDENTIFY_EVENT.decode(raw)
    parsed = parse_identify(record, blocklist)
    message_id, workspace_id = record["messageId"], record["workspaceId"]
    event = parsed.event
    if event is None:
        return Routed(
            rejections=parsed.rejections, message_id=message_id, workspace_id=workspace_id
        )
    profile_id = target_profile_id(
        event.workspace_id, event.user_id, event.anonymous_id, event.profile_id
    )
    return Routed(profile_id, to_json(event), parsed.rejections, message_id, workspace_id)
