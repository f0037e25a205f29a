"""Stage 1: from raw input bytes to a re-keyed event, or rejections. No Kafka in here.

Producers key input however they like, so the first stage decodes, checks and re-keys each event:
events that name a device (anonymousId) go to that device's partition, where the link from the
device to its known user lives; events that only name a user (or a profile) go straight to the
profile's partition.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.rules.custom_attributes import AttributePolicy
from streams.rules.events import (
    AfterErasure,
    IdentifyEvent,
    parse_identify,
    to_json,
)
from streams.rules.identity import Blocklists, IdKind, derive_profile_id
from streams.rules.input_formats import InputFormats, decode
from streams.rules.outcomes import (
    BY_ANONYMOUS,
    BY_PROFILE,
    Emit,
    Rejection,
    Source,
    rejected,
)
from topology.avro import AvroDecodeError


@dataclass(slots=True, init=False)  # not frozen, own __init__: built per event (outcomes.Emit)
class Routed:
    """What the first stage decided for one message: the event for the stage that owns it
    (which settles the message: ``rules.deduplication``), or the message's rejections."""

    emits: list[Emit]
    event: IdentifyEvent | None = None  # what was routed, when anything was

    def __init__(self, emits: list[Emit], event: IdentifyEvent | None = None) -> None:
        self.emits = emits
        self.event = event


def route(
    raw: bytes | None,
    source: Source,
    now: int,
    blocklists: Blocklists | None = None,
    policy: AttributePolicy | None = None,
    after_erasure: AfterErasure = "recreate",
    inputs: InputFormats | None = None,
) -> Routed:
    """Decode (any input format, see streams.rules.input_formats), check one input message and
    say where it goes next.

    Never raises: a message that trips an unforeseen error is rejected with its raw bytes (reason
    ``processing_error``) instead of stopping the partition behind it.
    """
    try:
        return _route(raw, source, now, blocklists, policy, after_erasure, inputs)
    except AvroDecodeError as exc:
        return Routed([rejected(Rejection(exc.reason, str(exc)), source, now, raw_value=raw)])
    except Exception as exc:
        failure = Rejection("processing_error", f"{type(exc).__name__}: {exc}")
        return Routed([rejected(failure, source, now, raw_value=raw)])


def _route(
    raw: bytes | None,
    source: Source,
    now: int,
    blocklists: Blocklists | None,
    policy: AttributePolicy | None,
    after_erasure: AfterErasure,
    inputs: InputFormats | None,
) -> Routed:
    record = decode(raw, inputs or InputFormats(), now, source.timestamp)
    parsed = parse_identify(record, blocklists, policy, after_erasure)
    message_id, workspace_id = record["messageId"], record["workspaceId"]
    emits = [rejected(r, source, now, message_id, workspace_id) for r in parsed.rejections]
    event = parsed.event
    if event is None:
        return Routed(emits)
    # The parts refused here travel with the event: its owner publishes them unless the
    # message turns out to be a duplicate there.
    payload = {
        "event": to_json(event),
        "source": source.to_json(),
        "warnings": [e.value for e in emits],
    }
    output, key = _destination(event)
    return Routed(
        [Emit(output, key, {"op": "event", **payload} if output == BY_PROFILE else payload)],
        event,
    )


def _destination(event: IdentifyEvent) -> list[str]:
    """Where an event goes next: its device's partition, else its profile's."""
    if event.anonymous_id is not None:
        return [
            BY_ANONYMOUS,
            derive_profile_id(event.workspace_id, IdKind.ANONYMOUS, event.anonymous_id),
        ]
    if event.user_id is not None:
        return [BY_PROFILE, derive_profile_id(event.workspace_id, IdKind.USER, event.user_id)]
    assert event.profile_id is not None
    return [BY_PROFILE, event.profile_id]
