"""The pipeline's steps behind two signatures, so that the topology can declare them as data.

A *routing* step takes one raw input message; a *keyed* step folds one record into the state of
its key, knowing the record's position in its input partition (so that it can tell a
redelivery). Both are pure: the deployment's choices arrive as ``Policies`` (already loaded; no
file or network below here) and the clock as ``now``. ``topology.stages`` says which step runs on
which topic with which table, and ``streams.runtime.pipeline`` runs whatever it declares: adding a
stage is a rule and a declaration, never a change to the runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, cast

from streams.rules import profile
from streams.rules.assembly import on_command, rerender
from streams.rules.attribute_types import AttributeTypes, Mark, firsts_of
from streams.rules.custom_attributes import AttributePolicy
from streams.rules.deduplication import DEFAULT_WINDOW_MS, is_duplicate, routed_here
from streams.rules.events import CUSTOM_PREFIX, AfterErasure
from streams.rules.identity import Blocklists
from streams.rules.input_formats import InputFormats
from streams.rules.linking import on_anonymous_event
from streams.rules.outcomes import (
    ATTRIBUTE_FIRSTS,
    BROADCAST,
    BY_PROFILE,
    REJECTIONS,
    Emit,
    Outcome,
    Position,
    Source,
)
from streams.rules.routing import route


@dataclass(frozen=True)
class Policies:
    """What a deployment decides for its rules (from its settings)."""

    attributes: AttributePolicy = field(default_factory=AttributePolicy)
    blocklists: Blocklists = field(default_factory=Blocklists)
    # the workspaces' custom attribute types, as far as the records read so far decide them;
    # the runtime keeps it up to date (streams.runtime.attribute_firsts)
    types: AttributeTypes = field(default_factory=AttributeTypes)
    after_erasure: AfterErasure = "recreate"
    dedupe_window_ms: int = DEFAULT_WINDOW_MS
    inputs: InputFormats = field(default_factory=InputFormats)


@dataclass(slots=True, init=False)  # not frozen, own __init__: built per event (outcomes.Emit)
class Stepped:
    """A step's result: the key's new state (None: delete it) and the records to send.

    ``outcome`` is set by the one step that settles the input message (the routing step for a
    message it rejects, else the step that owns its event: ``rules.deduplication``), so every
    message is accounted exactly once. Refusals of other steps are warnings on a message
    already counted.
    """

    state: Any
    emits: list[Emit]
    outcome: Outcome | None = None
    # (workspace, custom attribute) pairs whose type decisions the emitted records reflect: the
    # runtime renders them again when a decision changes (attribute_types.Rendered)
    renders: tuple[tuple[str, str], ...] = ()
    # attribute-firsts records this worker's AttributeTypes must take at once (before the
    # decisions are used again), whatever the reader of that topic has seen yet
    firsts: tuple[tuple[str, list[Any]], ...] = ()

    def __init__(
        self,
        state: Any,
        emits: list[Emit],
        outcome: Outcome | None = None,
        renders: tuple[tuple[str, str], ...] = (),
        firsts: tuple[tuple[str, list[Any]], ...] = (),
    ) -> None:
        self.state = state
        self.emits = emits
        self.outcome = outcome
        self.renders = renders
        self.firsts = firsts


_VALUE_OPS: Final[tuple[str, ...]] = (
    "set",
    "setOnce",
    "increment",
    "append",
    "remove",
)  # an event's JSON parts with values
RoutingStep = Callable[[bytes | None, Source, Policies, int], Stepped]
KeyedStep = Callable[[Any, str, Any, Position, Policies, int], Stepped]
# state, key, {workspace: {attribute: decision before}} of the changed decisions, policies, now
Rerender = Callable[[Any, str, dict[str, dict[str, Mark]], Policies, int], list[Emit]]


def route_message(raw: bytes | None, source: Source, policies: Policies, now: int) -> Stepped:
    """Decode, check and re-key. A message with an event is settled where the event goes (there
    it may be a duplicate); a message without one is rejected here.

    The earliest values of custom attributes that this message brings to light go straight to
    the attribute-firsts topic: a duplicate carries the same values, so nothing waits for it.
    """
    routed = route(
        raw,
        source,
        now,
        policies.blocklists,
        policies.attributes,
        policies.after_erasure,
        policies.inputs,
    )
    if routed.event is None:
        return Stepped(None, routed.emits, outcome="rejected")
    firsts = firsts_of(routed.event, source.partition, policies.types)
    if firsts:
        # Every profile partition hears of them in the stream itself, so that it renders again
        # what they change before its input is committed (attribute_types.Rendered).
        learned = [[e.key, e.value] for e in firsts]
        firsts.append(Emit(BY_PROFILE, BROADCAST, {"op": "recheck", "firsts": learned}))
    # attribute-firsts records always have a key (first_key)
    learn = tuple((cast(str, e.key), e.value) for e in firsts if e.output == ATTRIBUTE_FIRSTS)
    return Stepped(None, routed.emits + firsts, firsts=learn)


def _settle(
    remembered: Any, payload: dict[str, Any], at: Position, policies: Policies
) -> tuple[list[Emit], Outcome] | None:
    """The outcome of a message whose event the routing step sent here, with the refusals it
    carries; None for a duplicate (``rules.deduplication``)."""
    event = payload["event"]
    window = policies.dedupe_window_ms
    if is_duplicate(remembered, event["timestamp"], event["messageId"], at, window):
        return None
    warnings = [Emit(REJECTIONS, w["messageId"], w) for w in payload["warnings"]]
    return warnings, "applied_with_warning" if warnings else "applied"


def link_device(
    record: Any, key: str, payload: Any, at: Position, policies: Policies, now: int
) -> Stepped:
    """Which user owns this device; forward the device's events to the profile holding it.

    An erasure's cascade from the profile is no input message: nothing to settle."""
    if not routed_here(payload):
        return Stepped(*on_anonymous_event(record, key, payload, policies.types, now, at))
    settled = _settle(record and record.get("messages"), payload, at, policies)
    if settled is None:
        return Stepped(record, [], outcome="duplicate")
    warnings, outcome = settled
    record, emits = on_anonymous_event(record, key, payload, policies.types, now, at)
    return Stepped(record, warnings + emits, outcome=outcome)


def assemble_profile(
    assembled: Any, profile_id: str, command: Any, at: Position, policies: Policies, now: int
) -> Stepped:
    """Fold a command into the profile and publish the whole profile."""
    if command["op"] == "recheck":
        firsts = tuple((key, stamp) for key, stamp in command["firsts"])
        return Stepped(assembled, [], firsts=firsts)
    warnings: list[Emit] = []
    outcome: Outcome | None = None
    if routed_here(command):  # an event that names only its user or profile
        settled = _settle(assembled and assembled.get("messages"), command, at, policies)
        if settled is None:
            return Stepped(assembled, [], outcome="duplicate")
        warnings, outcome = settled
    record, emits = on_command(assembled, profile_id, command, policies.types, now, at)
    return Stepped(record, warnings + emits, outcome=outcome, renders=_brought(command))


def _brought(command: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The custom attributes a command may bring to its profile: its event's, or an attached
    slice's. What the profile held before was noted when it came."""
    if command["op"] in ("event", "member"):
        # Once per command (~1 per event): loops over typed dicts, no set of every key first.
        event: dict[str, Any] = command["event"]
        cut = len(CUSTOM_PREFIX)
        names: set[str] = set()
        for op in _VALUE_OPS:
            values: dict[str, Any] | None = event.get(op)
            if values:
                for key in values:
                    if key.startswith(CUSTOM_PREFIX):
                        names.add(key[cut:])
        if not names:
            return ()
        workspace_id: str = event["workspaceId"]
        return tuple(sorted((workspace_id, name) for name in names))
    if command["op"] == "attach" and command.get("state"):
        state = command["state"]
        return tuple(sorted((state["workspaceId"], n) for n in profile.custom_names(state)))
    return ()


def rerender_profile(
    assembled: Any,
    profile_id: str,
    changed: dict[str, dict[str, Mark]],
    policies: Policies,
    now: int,
) -> list[Emit]:
    """The profile again if a custom attribute it holds changed type or admission."""
    return rerender(assembled, profile_id, changed, policies.types, now)
