"""Custom attribute types, decided by the input alone: the earliest value wins.

WebEngage: "the first datapoint synced defines the data type"; NotifyVisitors: "the data type must
be consistent". "First" has to mean the same in a replay as in the live run, so it is the earliest
value by (event time, messageId), never the first to arrive somewhere. For each routing partition
and each (workspace, attribute, kind), the earliest value's stamp is published to a compacted
topic that every worker reads in full (``streams.runtime.attribute_firsts``): a handful of tiny
records, and no single partition on the hot path for a big workspace. ``AttributeTypes`` holds
them and decides, the same on every worker and in every replay:

* an attribute's type is the catalog's (Herogi makes you create attributes first), else the kind
  of its earliest value;
* per workspace and type, the ``max_per_type`` attributes (WebEngage: 25) whose earliest values
  are earliest are admitted, catalog ones first; the others are not shown.

Values reach profiles whatever the decision, kept by kind (``profile.from_event``); a profile shows
what the current decision says (``profile.render``), so when a late, earlier value changes a
decision, the profiles holding the attribute are rendered again (``rerender``). Refusals are the
decision log: a value is refused when it reaches a profile under a decision that does not show
it, and again when a changed decision stops showing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from streams.rules import profile
from streams.rules.attribute_values import KINDS
from streams.rules.events import CUSTOM_PREFIX, IdentifyEvent
from streams.rules.outcomes import ATTRIBUTE_FIRSTS, Emit, Rejection, Source, rejected

SEPARATOR: Final = "\x1f"
# The source of a refusal that no one input message caused: a decision changed, or a device's
# values reached a profile with a login (the Rejection schema documents the empty topic).
NO_SOURCE: Final = Source("", -1, -1)
Stamp = tuple[int, str]  # (event time, messageId)


@dataclass(frozen=True)
class Catalog:
    """Declared attribute types: ``{"*": {"plan": "string"}, "acme": {"ltv": "number"}}``.

    ``*`` applies to every workspace; a workspace's own entries win over it.
    """

    declared: dict[str, dict[str, str]] = field(default_factory=dict)

    def kind_of(self, workspace_id: str, name: str) -> str | None:
        own = self.declared.get(workspace_id, {})
        return own.get(name) or self.declared.get("*", {}).get(name)

    def names(self, workspace_id: str) -> dict[str, str]:
        return {**self.declared.get("*", {}), **self.declared.get(workspace_id, {})}

    @classmethod
    def from_config(cls, declared: dict[str, dict[str, str]]) -> Catalog:
        """The catalog of ``IDENTITY_STREAM_ATTRIBUTE_CATALOG``'s JSON; unknown types refused."""
        for workspace, types in declared.items():
            for name, kind in types.items():
                if kind not in KINDS:
                    raise ValueError(f"catalog {workspace}.{name}: {kind!r} is not one of {KINDS}")
        return cls(declared)


@dataclass(frozen=True, slots=True)
class Decision:
    """What a workspace shows of one custom attribute: values of ``kind``, if ``admitted``.

    ``first`` is the stamp of the value that decided it (None: declared in the catalog).
    """

    kind: str
    admitted: bool
    first: Stamp | None

    def shows(self) -> str | None:
        return self.kind if self.admitted else None


def first_key(workspace_id: str, name: str, kind: str, partition: int) -> str:
    """Key of a record on the attribute-firsts topic: one per routing partition."""
    return SEPARATOR.join((workspace_id, name, kind, str(partition)))


def custom_kinds(event: IdentifyEvent) -> list[tuple[str, str]]:
    """(name, kind) of every custom value an event carries; operations are typed too."""
    # Called twice per event (firsts, refusals): loops, not comprehensions over joined tuples.
    cut = len(CUSTOM_PREFIX)
    if not (event.set_once or event.increment or event.append or event.remove):
        # Nearly every event: only sets, one kind per key, so no pair comes twice.
        found = [
            (key[cut:], value[0])
            for key, value in event.set.items()
            if key.startswith(CUSTOM_PREFIX)
        ]
        if len(found) > 1:
            found.sort()
        return found
    kinds = set()
    for values in (event.set, event.set_once):
        for key, value in values.items():
            if key.startswith(CUSTOM_PREFIX):
                kinds.add((key[cut:], value[0]))
    for key in event.increment:
        kinds.add((key[cut:], "number"))
    for ops in (event.append, event.remove):
        for key in ops:
            kinds.add((key[cut:], "list"))
    return sorted(kinds)


class AttributeTypes:
    """Every routing partition's earliest value per (workspace, attribute, kind), and the
    decisions that follow from them. A join-semilattice: records only ever lower a stamp, so the
    decisions are the same for any order in which the records are read."""

    def __init__(self, catalog: Catalog | None = None, max_per_type: int = 25) -> None:
        self.catalog = catalog or Catalog()
        self.max_per_type = max_per_type
        self.firsts: dict[str, Stamp] = {}  # first_key -> stamp
        self._earliest: dict[str, dict[str, dict[str, Stamp]]] = {}  # ws -> name -> kind -> stamp
        self._decisions: dict[str, dict[str, Decision]] = {}  # ws -> name -> decision
        self.version = 0  # grows whenever a decision changes

    def known(self, key: str) -> Stamp | None:
        return self.firsts.get(key)

    def add(self, key: str, value: Sequence[Any]) -> set[tuple[str, str]]:
        """Take one record ([event time, messageId]); the (workspace, name) pairs whose
        decision it changed."""
        stamp = (int(value[0]), str(value[1]))
        known = self.firsts.get(key)
        if known is not None and known <= stamp:
            return set()
        self.firsts[key] = stamp
        workspace_id, name, kind, _ = key.split(SEPARATOR)
        kinds = self._earliest.setdefault(workspace_id, {}).setdefault(name, {})
        if kind in kinds and kinds[kind] <= stamp:
            return set()
        kinds[kind] = stamp
        return self._decide(workspace_id)

    def decision(self, workspace_id: str, name: str) -> Decision | None:
        """None while no value of the attribute is known (and the catalog says nothing)."""
        decided = self._decisions.get(workspace_id, {}).get(name)
        if decided is None and (kind := self.catalog.kind_of(workspace_id, name)) is not None:
            return Decision(kind, self._catalog_admitted(workspace_id, name, kind), None)
        return decided

    def shown(self, workspace_id: str) -> profile.Shown:
        """What a profile of this workspace shows of each custom attribute, as decided now (a
        render asks it for each of its custom values at once)."""
        decisions = self._decisions.get(workspace_id, {})

        def shows(name: str) -> str | None:
            decided = decisions.get(name)
            if decided is None:  # undecided, or declared in the catalog
                decided = self.decision(workspace_id, name)
            return None if decided is None else decided.shows()

        return shows

    def _catalog_admitted(self, workspace_id: str, name: str, kind: str) -> bool:
        declared = sorted(n for n, k in self.catalog.names(workspace_id).items() if k == kind)
        return declared.index(name) < self.max_per_type

    def _decide(self, workspace_id: str) -> set[tuple[str, str]]:
        earliest = self._earliest.get(workspace_id, {})
        kinds: dict[str, tuple[str, Stamp | None]] = {}
        for name, by_kind in earliest.items():
            declared = self.catalog.kind_of(workspace_id, name)
            if declared is not None:
                kinds[name] = (declared, None)
            else:
                stamp, kind = min((stamp, kind) for kind, stamp in by_kind.items())
                kinds[name] = (kind, stamp)
        decisions: dict[str, Decision] = {}
        for kind in KINDS:
            catalogued = sorted(n for n, k in self.catalog.names(workspace_id).items() if k == kind)
            found = sorted(
                (stamp, name)
                for name, (k, stamp) in kinds.items()
                if k == kind and stamp is not None
            )
            ranked = [*catalogued, *(name for _, name in found)]
            for rank, name in enumerate(ranked):
                if name in kinds:
                    decisions[name] = Decision(kind, rank < self.max_per_type, kinds[name][1])
        before = self._decisions.get(workspace_id, {})
        self._decisions[workspace_id] = decisions
        changed = {
            (workspace_id, name)
            for name in decisions.keys() | before.keys()
            if decisions.get(name) != before.get(name)
        }
        if changed:
            self.version += 1
        return changed


def firsts_of(event: IdentifyEvent, partition: int, types: AttributeTypes) -> list[Emit]:
    """The attribute-firsts records this event lowers (none when earlier values are known)."""
    emits = []
    for name, kind in custom_kinds(event):
        key = first_key(event.workspace_id, name, kind, partition)
        known = types.known(key)
        if known is None or event.stamp < known:
            emits.append(Emit(ATTRIBUTE_FIRSTS, key, list(event.stamp)))
    return emits


def _refusal(
    name: str,
    kind: str,
    decision: Decision,
    workspace_id: str,
    message_id: str,
    source: Source,
    now: int,
) -> Emit:
    key = f"{CUSTOM_PREFIX}{name}"
    if decision.kind != kind:
        since = (
            "declared in the catalog"
            if decision.first is None
            else f"its earliest value is message {decision.first[1]} at {decision.first[0]}"
        )
        reason = "type_mismatch"
        text = (
            f"{key} is a {decision.kind} attribute in workspace {workspace_id!r} ({since}); "
            f"a {kind} value was refused"
        )
    else:
        reason = "attribute_limit_reached"
        text = (
            f"{key}: workspace {workspace_id!r} already has its {decision.kind} attributes "
            "with earlier first values"
        )
    return rejected(
        Rejection(reason, text, key, whole=False), source, now, message_id, workspace_id
    )


def refusals(event: IdentifyEvent, types: AttributeTypes, source: Source, now: int) -> list[Emit]:
    """Refusals of an event's custom values that the current decisions do not show.

    A value of an attribute not decided yet (its earliest value is still on its way to this
    worker) is judged when the decision comes (``newly_hidden``).
    """
    emits = []
    for name, kind in custom_kinds(event):
        decision = types.decision(event.workspace_id, name)
        if decision is not None and decision.shows() != kind:
            emits.append(
                _refusal(name, kind, decision, event.workspace_id, event.message_id, source, now)
            )
    return emits


# What a partition's published records reflect of one attribute's decision: None while
# undecided, "" when decided and not admitted, else the kind shown.
Mark = str | None


def mark(decision: Decision | None) -> Mark:
    return None if decision is None else (decision.shows() or "")


class Rendered:
    """The decisions that the records a partition has published reflect, per attribute its
    profiles hold. When the decisions move on, ``stale`` says which attributes to render again
    (and what they showed before); the runtime keeps one per partition, in the partition's table,
    and records the new marks only once the records rendered again are on the broker."""

    def __init__(self, marks: dict[str, Mark] | None = None) -> None:
        self.marks: dict[str, Mark] = dict(marks or {})  # "workspace\x1fname" -> mark

    def note(self, renders: Iterable[tuple[str, str]], types: AttributeTypes) -> None:
        """Records of these (workspace, attribute)s were rendered under the current decisions."""
        for workspace_id, name in renders:
            key = f"{workspace_id}{SEPARATOR}{name}"
            if key not in self.marks:
                self.marks[key] = mark(types.decision(workspace_id, name))

    def stale(self, types: AttributeTypes) -> dict[str, dict[str, Mark]]:
        """workspace -> name -> mark before, for every attribute whose decision moved on."""
        changed: dict[str, dict[str, Mark]] = {}
        for key, before in self.marks.items():
            workspace_id, name = key.split(SEPARATOR)
            if mark(types.decision(workspace_id, name)) != before:
                changed.setdefault(workspace_id, {})[name] = before
        return changed

    def caught_up(self, types: AttributeTypes) -> Rendered:
        """The marks once everything ``stale`` named has been rendered again."""
        return Rendered({key: mark(types.decision(*key.split(SEPARATOR))) for key in self.marks})


def refused_on_attach(
    state: profile.ProfileState, types: AttributeTypes, source: Source, now: int
) -> list[Emit]:
    """Refusals of the values a device's slice brings to a profile that the decisions do not
    show: ``newly_hidden`` as if none of them had been judged (under the device's own profile
    they may not have been).

    Only a value of a kind its attribute's decision does not show is refused, so the slice's
    registers are looked at first: nearly always every kind they hold is shown (or undecided),
    and the slice's values, a walk of every register, are not computed at all."""
    workspace_id: str = state["workspaceId"]
    for name, kind in profile.register_kinds(state):
        decided = types.decision(workspace_id, name)
        if decided is not None and decided.shows() != kind:
            break
    else:
        return []
    held = profile.held_kinds(state)
    return newly_hidden(state, dict.fromkeys(held), types, source, now, held)


def newly_hidden(
    state: profile.ProfileState,
    before: dict[str, Mark],
    types: AttributeTypes,
    source: Source,
    now: int,
    held: dict[str, dict[str, str]] | None = None,
) -> list[Emit]:
    """Refusals of the values a profile no longer shows now that the decisions of the names in
    ``before`` changed: values it showed, and values no decision had judged yet.

    ``held`` is ``profile.held_kinds(state)`` when the caller has it already (it walks every
    register of the profile)."""
    workspace_id = state["workspaceId"]
    emits = []
    if held is None:
        held = profile.held_kinds(state)
    for name, kinds in sorted(held.items()):
        if name not in before:
            continue
        new = types.decision(workspace_id, name)
        if new is None:
            continue
        for kind, message_id in sorted(kinds.items()):
            judged_ok = before[name] is None or before[name] == kind
            if judged_ok and new.shows() != kind:
                emits.append(_refusal(name, kind, new, workspace_id, message_id, source, now))
    return emits
