"""The pipeline's steps behind two signatures, so that the topology can declare them as data.

A *routing* step takes one raw input message; a *keyed* step folds one record into the state of
its key, knowing the record's position in its input partition (so that it can tell a
redelivery). Both are pure: the deployment's choices arrive as ``Policies`` (already loaded; no
file or network below here) and the clock as ``now``. ``topology.stages`` says which step runs on
which topic with which table, and ``streams.runtime.agents`` runs whatever it declares: adding a
stage is a rule and a declaration, never a change to the runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.rules.assembly import on_command
from streams.rules.attribute_types import Catalog, on_custom_values
from streams.rules.custom_attributes import AttributePolicy
from streams.rules.deduplication import DEFAULT_WINDOW_MS, is_forget, on_message, pack
from streams.rules.events import AfterErasure
from streams.rules.identity import Blocklists
from streams.rules.input_formats import InputFormats
from streams.rules.linking import on_anonymous_event
from streams.rules.outcomes import BY_MESSAGE, Emit, Position, Source
from streams.rules.routing import route


@dataclass(frozen=True)
class Policies:
    """What a deployment decides for its rules (from its settings)."""

    attributes: AttributePolicy = field(default_factory=AttributePolicy)
    blocklists: Blocklists = field(default_factory=Blocklists)
    catalog: Catalog = field(default_factory=Catalog)
    after_erasure: AfterErasure = "recreate"
    dedupe_window_ms: int = DEFAULT_WINDOW_MS
    inputs: InputFormats = field(default_factory=InputFormats)


@dataclass(frozen=True, slots=True)
class Stepped:
    """A step's result: the key's new state (None: delete it) and the records to send.

    ``decides_outcome`` marks the step that settles the input message's fate (applied, duplicate,
    rejected): its records are what the message is accounted by, exactly once. Refusals of
    every other step are warnings on a message already counted.
    """

    state: Any
    emits: list[Emit]
    decides_outcome: bool = False


RoutingStep = Callable[[bytes | None, Source, Policies, int], Stepped]
KeyedStep = Callable[[Any, str, Any, Position, Policies, int], Stepped]


def route_message(raw: bytes | None, source: Source, policies: Policies, now: int) -> Stepped:
    """Decode, check and re-key; a message with a messageId waits for deduplication first."""
    routed = route(
        raw,
        source,
        now,
        policies.blocklists,
        policies.attributes,
        policies.after_erasure,
        policies.inputs,
    )
    if routed.dedupe_key is None:
        return Stepped(None, routed.emits, decides_outcome=True)
    decisions = pack(routed.emits, routed.timestamp, source)
    return Stepped(None, [Emit(BY_MESSAGE, routed.dedupe_key, decisions)])


def drop_duplicates(
    seen: Any, key: str, payload: Any, at: Position, policies: Policies, now: int
) -> Stepped:
    """Release a message's decisions unless its messageId was seen within the window.

    An erasure's forget is not an input message: it has no outcome to decide.
    """
    record, emits = on_message(seen, key, payload, policies.dedupe_window_ms)
    return Stepped(record, emits, decides_outcome=not is_forget(payload))


def type_custom_values(
    registry: Any, workspace_id: str, payload: Any, at: Position, policies: Policies, now: int
) -> Stepped:
    """First type wins per workspace; values of another type are refused."""
    return Stepped(
        *on_custom_values(
            registry, workspace_id, payload, policies.attributes, policies.catalog, now
        )
    )


def link_device(
    record: Any, key: str, payload: Any, at: Position, policies: Policies, now: int
) -> Stepped:
    """Which user owns this device; forward the device's events to the profile holding it."""
    return Stepped(*on_anonymous_event(record, key, payload, now, at))


def assemble_profile(
    assembled: Any, profile_id: str, command: Any, at: Position, policies: Policies, now: int
) -> Stepped:
    """Fold a command into the profile and publish the whole profile."""
    return Stepped(*on_command(assembled, profile_id, command, now, at))
