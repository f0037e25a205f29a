"""The profile fold: how events and profiles combine, as a join-semilattice.

Events of one person arrive in any order, on any partition, possibly twice. So a profile is not
"the result of applying events in arrival order" but a join of per-attribute registers:

* ``lww``: last-writer-wins register per attribute, ordered by (event time, messageId). A set
  writes a value, an unset writes a tombstone (value None), so a late older write loses to it.
* ``once``: first-writer-wins register per attribute for set_once, ordered the same way.

Joining is associative, commutative and idempotent, so any permutation, any split across
partitions and any redelivery of the same events gives the same profile, and merging two profiles
of one person (identity resolution) is the very same join.

The value shown for an attribute is the LWW value when it is a set; the set_once value when no
set exists or when it came after the latest unset; absent otherwise.

Bounded state. Registers are one per attribute, but increments (each kept with its stamp, so that
a late set knows which ones came after it) and the tombstones of removed list items would grow
with every event a profile has seen. So each attribute keeps its newest ``WINDOW`` increments and
tombstones by stamp; older increments *settle* into one exact sum (``base``) and older tombstones
are dropped. Whatever the arrival order, the profile is exact unless a set, unset or append
arrives behind more than ``WINDOW`` newer operations of the same attribute (README, guarantees).
Redelivery after a crash is recognised by the stages' input positions (see ``assembly``), not by
remembering messageIds: the state does not grow with the events it has seen.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any, Final

from streams.rules.attribute_values import to_avro
from streams.rules.events import CUSTOM_PREFIX, SYSTEM_ATTRIBUTES, IdentifyEvent

ProfileState = dict[str, Any]
Register = list[Any]  # [event time, messageId, value or None for an unset]
# Settled increments of one attribute: [first time, first messageId, last time, last messageId,
# how many, their sum]; the sum is an int, or a Fraction as "n/d" once a decimal joined it (exact,
# so the shown value does not depend on which increments settled together).
Base = list[Any]

WINDOW: Final = 64  # increments and list tombstones kept apart per attribute; older ones settle
KIND_SEPARATOR: Final = "\x1f"
# A custom attribute's shown kind, by name, as the workspace's decision says (None: not shown).
Shown = Callable[[str], str | None]

OPT_IN_DEFAULTS: Final = {
    "emailOptIn": "OPTIN",
    "smsOptIn": "OPTIN",
    "pushOptIn": "OPTIN",
    "webPushOptIn": "OPTIN",
    "whatsappOptIn": "OPTOUT",  # WebEngage: WhatsApp is off until explicitly opted in
    "locationOptIn": "OPTIN",
}


# The system attributes of a profile that holds no value: None, or the opt-in default
_UNSET_ATTRIBUTES: Final[dict[str, Any]] = {
    name: OPT_IN_DEFAULTS.get(name) for name in SYSTEM_ATTRIBUTES
}


def kinded(key: str, kind: str) -> str:
    """The register key of a custom attribute's values of one kind (see ``render``)."""
    return f"{key}{KIND_SEPARATOR}{kind}"


def _by_kind(values: dict[str, Any]) -> dict[str, Any]:
    """Set and setOnce values under their register keys: custom ones by their kind."""
    return {
        kinded(key, value[0]) if key.startswith(CUSTOM_PREFIX) else key: value
        for key, value in values.items()
    }


def _custom_as(ops: dict[str, Any], kind: str) -> dict[str, Any]:
    return {kinded(key, kind): value for key, value in ops.items()}


def from_event(event: IdentifyEvent, profile_id: str) -> ProfileState:
    """The profile that knows only this event.

    Custom values are kept by kind (``custom.plan\x1fnumber``), whatever the workspace has
    decided the attribute's type to be: the decision may change when an earlier value arrives
    late, and the profile shows what the decision of the moment says (``render``). An unset of a
    custom attribute is one tombstone for all its kinds.
    """
    stamp = (event.timestamp, event.message_id)
    lww: dict[str, Register] = {key: [*stamp, None] for key in event.unset}
    lww.update({key: [*stamp, value] for key, value in _by_kind(event.set).items()})
    return {
        "profileId": profile_id,
        "workspaceId": event.workspace_id,
        "userId": event.user_id,
        "anonymousIds": [event.anonymous_id] if event.anonymous_id is not None else [],
        "createdAt": event.timestamp,
        "updatedAt": event.timestamp,
        "lastMessageId": event.message_id,
        "lww": lww,
        "once": {key: [*stamp, value] for key, value in _by_kind(event.set_once).items()},
        # increments by messageId, so a redelivered increment counts once
        "incr": {
            key: {event.message_id: [*stamp, d]}
            for key, d in _custom_as(event.increment, "number").items()
        },
        # list items: the stamp of their latest append and of their latest remove
        "adds": _item_stamps(_custom_as(event.append, "list"), stamp),
        "rems": _item_stamps(_custom_as(event.remove, "list"), stamp),
    }


def _item_stamps(ops: dict[str, list[Any]], stamp: tuple[int, str]) -> dict[str, dict[str, Any]]:
    return {
        key: {_item_key(item): [*stamp] for item in items} for key, items in ops.items() if items
    }


def _item_key(item: Any) -> str:
    return json.dumps(item)  # distinguishes 1 from "1" and from true


def _wins(new: Register, old: Register, latest: bool) -> bool:
    if new[0] != old[0] or new[1] != old[1]:
        return ((new[0], new[1]) > (old[0], old[1])) == latest
    # Same time and messageId but another value: only a reused messageId does that. Any fixed
    # order keeps the join commutative; deduplication decides which copy counts.
    return json.dumps(new[2], sort_keys=True) > json.dumps(old[2], sort_keys=True)


def _join_registers(
    a: dict[str, Register], b: dict[str, Register], latest: bool
) -> dict[str, Register]:
    joined = dict(a)
    for key, reg in b.items():
        mine = joined.get(key)
        if mine is None:
            joined[key] = reg
        # _wins, inlined (called for every key), comparing the stamps' parts without tuples
        elif reg[0] != mine[0]:
            if (reg[0] > mine[0]) == latest:
                joined[key] = reg
        elif reg[1] != mine[1]:
            if (reg[1] > mine[1]) == latest:
                joined[key] = reg
        elif _wins(reg, mine, latest):
            joined[key] = reg
    return joined


def join(into: ProfileState, other: ProfileState, disjoint: bool = False) -> ProfileState:
    """Combine two states of the same person; the result keeps ``into``'s profile id.

    Attribute registers, anonymous ids and times join commutatively. A known user id is never
    replaced by another: identity resolution does not route two known users into one profile.

    Settled increments are sums, which cannot tell shared events apart: two states of one
    history (a part and a redelivered or newer copy of it) keep the base that settled more, while
    ``disjoint`` parts (a profile's own events and its devices' slices) add their bases.
    """
    latest = max(
        (into["updatedAt"], into["lastMessageId"]), (other["updatedAt"], other["lastMessageId"])
    )
    lww = _join_registers(into["lww"], other["lww"], latest=True)
    settled = _join_settled(into, other, lww, disjoint)
    return {
        "profileId": into["profileId"],
        "workspaceId": into["workspaceId"],
        "userId": into["userId"] if into["userId"] is not None else other["userId"],
        "anonymousIds": sorted(set(into["anonymousIds"]) | set(other["anonymousIds"])),
        "createdAt": min(into["createdAt"], other["createdAt"]),
        "updatedAt": latest[0],
        "lastMessageId": latest[1],
        "lww": lww,
        "once": _join_registers(into["once"], other["once"], latest=False),
        "incr": _join_ops(into, other, "incr", lww, None if disjoint else settled),
        "adds": _join_ops(into, other, "adds", lww),
        "rems": _join_ops(into, other, "rems", lww),
        **settled,
    }


def _join_ops(
    a: ProfileState,
    b: ProfileState,
    name: str,
    lww: dict[str, Register],
    settled: dict[str, Any] | None = None,
) -> dict[str, dict[str, list[Any]]]:
    """Both states' ``name`` operations joined, those no longer counting pruned; with
    ``settled``, below the bases' floors too (``_settled_floors``). Most profiles have none of
    them: then nothing is built."""
    ops_a, ops_b = a.get(name), b.get(name)
    if not ops_a and not ops_b:
        return {}
    floors = lww if settled is None else _settled_floors(lww, settled)
    return _prune(_join_nested(ops_a or {}, ops_b or {}), floors)


def _settled_floors(lww: dict[str, Register], settled: dict[str, Any]) -> dict[str, Register]:
    """Floors below which increments no longer count apart: the latest set or unset, or, when
    later, the newest increment in the base.

    A state settles its oldest increments first, so whatever is at or before its base's newest
    stamp is in that base: the other history's copy of it must not count twice.
    """
    floors = dict(lww)
    for key, base in settled.get("base", {}).items():
        floor = _floor(lww, key)
        if floor is None or (base[2], base[3]) > (floor[0], floor[1]):
            floors[key] = [base[2], base[3], None]
    return floors


def _join_settled(
    a: ProfileState, b: ProfileState, lww: dict[str, Register], disjoint: bool
) -> dict[str, Any]:
    """The joined ``base`` of settled increments (absent while nothing has settled)."""
    bases: dict[str, Base] = dict(a.get("base", {}))
    for key, base in b.get("base", {}).items():
        mine = bases.get(key)
        if mine is None:
            bases[key] = base
        elif disjoint:
            first = min(mine[:2], base[:2])
            last = max(mine[2:4], base[2:4])
            bases[key] = [*first, *last, mine[4] + base[4], _add(mine[5], base[5])]
        else:
            bases[key] = max(mine, base, key=lambda x: (x[4], x[2:4], x[:2], str(x[5])))
    kept = {key: base for key, base in bases.items() if _counts_after(base, _floor(lww, key))}
    return {"base": kept} if kept else {}


def _counts_after(base: Base, floor: Register | None) -> bool:
    """Whether settled increments still count after the attribute's latest set or unset.

    Exact when the floor is before or after all of them; a floor between them (a set that
    arrived behind more than ``WINDOW`` newer increments) keeps the whole base.
    """
    return floor is None or (base[2], base[3]) > (floor[0], floor[1])


def _join_nested(
    a: dict[str, dict[str, list[Any]]], b: dict[str, dict[str, list[Any]]]
) -> dict[str, dict[str, list[Any]]]:
    """Per attribute, per entry: keep the latest stamp (values are [time, messageId, ...])."""
    joined = {key: dict(entries) for key, entries in a.items()}
    for key, entries in b.items():
        mine = joined.setdefault(key, {})
        for entry, value in entries.items():
            if entry not in mine or value > mine[entry]:
                mine[entry] = value
    return joined


def _floor(lww: dict[str, Register], key: str) -> Register | None:
    """The latest set or unset that ``key``'s operations come after: a custom attribute's
    unset (kindless) covers the registers of all its kinds."""
    own = lww.get(key)
    if KIND_SEPARATOR not in key:
        return own
    unset = lww.get(key.split(KIND_SEPARATOR, 1)[0])
    if own is None or (unset is not None and (unset[0], unset[1]) > (own[0], own[1])):
        return unset
    return own


def _prune(
    ops: dict[str, dict[str, list[Any]]], lww: dict[str, Register]
) -> dict[str, dict[str, list[Any]]]:
    """Drop operations older than the attribute's latest set or unset: they can never count."""
    pruned = {}
    for key, entries in ops.items():
        floor = _floor(lww, key)
        kept = {
            e: v for e, v in entries.items() if floor is None or (v[0], v[1]) > (floor[0], floor[1])
        }
        if kept:
            pruned[key] = kept
    return pruned


def forget(state: ProfileState | None, stamp: list[Any]) -> ProfileState | None:
    """The state without anything written at or before ``stamp`` (an erasure); None if empty.

    Erasing is a floor on every register: joining an erased state with anything older gives the
    erased state again, so erasure keeps the fold order-independent.
    """
    if state is None:
        return None
    floor = (stamp[0], stamp[1])

    def after(entry: list[Any]) -> bool:
        return (entry[0], entry[1]) > floor

    lww = {k: r for k, r in state["lww"].items() if after(r)}
    once = {k: r for k, r in state["once"].items() if after(r)}
    # settled increments cannot be told apart: any of them at or before the floor forgets all
    bases = {k: b for k, b in state.get("base", {}).items() if after(b)}
    nested = {
        name: {
            key: kept
            for key, entries in state.get(name, {}).items()
            if (kept := {e: v for e, v in entries.items() if after(v)})
        }
        for name in ("incr", "adds", "rems")
    }
    times = [r[0] for r in (*lww.values(), *once.values(), *bases.values())] + [
        v[0]
        for entries in nested.values()
        for per_key in entries.values()
        for v in per_key.values()
    ]
    if not times and (state["updatedAt"], state["lastMessageId"]) <= floor:
        return None  # nothing happened after the erasure
    # Which events came after the erasure is not kept, only their writes: the earliest surviving
    # write (else the latest event) stands for the profile's creation.
    created = min(times) if times else state["updatedAt"]
    forgotten = {**state, "lww": lww, "once": once, **nested, "createdAt": created}
    forgotten.pop("base", None)
    return forgotten | ({"base": bases} if bases else {})


def fold(state: ProfileState | None, event: IdentifyEvent, profile_id: str) -> ProfileState:
    """Apply one new event to a profile (or start one).

    Idempotent while the event's increments are within their attributes' windows; beyond that
    an increment is added to the settled sum, so the stages never fold a redelivered event twice
    (they recognise it by its input position, see ``assembly``).
    """
    if state is None:
        return from_event(event, profile_id)
    if not (
        event.increment
        or event.append
        or event.remove
        or state.get("incr")
        or state.get("adds")
        or state.get("rems")
        or state.get("base")
    ):
        return _fold_registers(state, event)
    return _fold_joined(state, event, profile_id)


def _fold_registers(state: ProfileState, event: IdentifyEvent) -> ProfileState:
    """``_fold_joined`` when neither the state nor the event has increments or list edits (most
    events of most profiles): the same state, built without joining the maps both lack. It is
    the commonest fold, and an anonymous visit is folded twice (its device, its profile)."""
    stamp = (event.timestamp, event.message_id)
    lww: dict[str, Register] = {key: [*stamp, None] for key in event.unset}
    lww.update({key: [*stamp, value] for key, value in _by_kind(event.set).items()})
    once = {key: [*stamp, value] for key, value in _by_kind(event.set_once).items()}
    ids = set(state["anonymousIds"])
    if event.anonymous_id is not None:
        ids.add(event.anonymous_id)
    latest = max((state["updatedAt"], state["lastMessageId"]), stamp)
    return {
        "profileId": state["profileId"],
        "workspaceId": state["workspaceId"],
        "userId": state["userId"] if state["userId"] is not None else event.user_id,
        "anonymousIds": sorted(ids),
        "createdAt": min(state["createdAt"], event.timestamp),
        "updatedAt": latest[0],
        "lastMessageId": latest[1],
        "lww": _join_registers(state["lww"], lww, latest=True),
        "once": _join_registers(state["once"], once, latest=False),
        "incr": {},
        "adds": {},
        "rems": {},
    }


def _fold_joined(state: ProfileState, event: IdentifyEvent, profile_id: str) -> ProfileState:
    """The definition of a fold: the join with the profile that knows only the event."""
    single = from_event(event, profile_id)
    bases: dict[str, Base] = state.get("base", {})
    late = {
        key: entry
        for key, entries in single["incr"].items()
        if key in bases
        for entry in entries.values()
        if (entry[0], entry[1]) <= (bases[key][2], bases[key][3])
    }
    if late:  # older than increments that already settled: it settles at once
        state = {**state, "base": {**bases, **{k: _settled(bases[k], e) for k, e in late.items()}}}
        single = {**single, "incr": {k: v for k, v in single["incr"].items() if k not in late}}
    return settle(join(state, single))


def settle(state: ProfileState) -> ProfileState:
    """Per attribute, increments beyond the newest ``WINDOW`` into the base; older tombstones
    of removed list items dropped (with the append they removed)."""
    incr: dict[str, dict[str, list[Any]]] = state.get("incr", {})
    rems: dict[str, dict[str, list[Any]]] = state.get("rems", {})
    if all(len(v) <= WINDOW for v in incr.values()) and all(
        len(v) <= WINDOW for v in rems.values()
    ):
        return state
    bases: dict[str, Base] = dict(state.get("base", {}))
    window: dict[str, dict[str, list[Any]]] = {}
    for key, entries in incr.items():
        ordered = sorted(entries.items(), key=lambda kv: kv[1])
        for _, entry in ordered[:-WINDOW]:
            bases[key] = _settled(bases.get(key), entry)
        window[key] = dict(ordered[-WINDOW:])
    adds = {key: dict(items) for key, items in state.get("adds", {}).items()}
    kept_rems: dict[str, dict[str, list[Any]]] = {}
    for key, entries in rems.items():
        ordered = sorted(entries.items(), key=lambda kv: kv[1])
        orphans = 0  # removes whose append has not arrived (yet): kept, up to WINDOW of them
        older = ordered[:-WINDOW]
        older.reverse()  # not reversed(...) of the slice: mypyc 2.4's compiler fails on it
        for item, removed in older:
            added = adds.get(key, {}).get(item)
            if added is None and orphans < WINDOW:
                orphans += 1
                kept_rems.setdefault(key, {})[item] = removed
            elif added is not None and removed > added:
                del adds[key][item]  # removed for good: neither is needed any more
        kept_rems.setdefault(key, {}).update(ordered[-WINDOW:])
    settled = {**state, "incr": window, "adds": {k: v for k, v in adds.items() if v}}
    settled["rems"] = {k: v for k, v in kept_rems.items() if v}
    if bases:
        settled["base"] = bases
    return settled


def _settled(base: Base | None, entry: list[Any]) -> Base:
    """``base`` with one more increment ``entry`` ([time, messageId, delta]) in it."""
    ts, message_id, delta = entry
    if base is None:
        total: Any = delta if isinstance(delta, int) else _exact(Fraction(delta))
        return [ts, message_id, ts, message_id, 1, total]
    first = min([base[0], base[1]], [ts, message_id])
    last = max([base[2], base[3]], [ts, message_id])
    return [*first, *last, base[4] + 1, _add(base[5], delta)]


def _exact(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def _add(total: Any, delta: Any) -> Any:
    if isinstance(total, int) and isinstance(delta, int):
        return total + delta
    return _exact(Fraction(total) + Fraction(delta))


def current_values(state: ProfileState) -> dict[str, Any]:
    """The value of every attribute that has one, by attribute key."""
    # Per rendered profile and per attach, over every register: the floor is inlined and the
    # operation registers are looked at only when the profile has any.
    lww: dict[str, Register] = state["lww"]
    once: dict[str, Register] = state["once"]
    incr, adds, rems = state.get("incr", {}), state.get("adds", {}), state.get("rems", {})
    bases: dict[str, Base] = state.get("base", {})
    operations = bool(incr or adds or rems or bases)
    # As _floor: a kindless unset covers every kind's register. Most profiles have none, and
    # then no key needs its kindless name looked up.
    unsets = any(KIND_SEPARATOR not in key and key.startswith(CUSTOM_PREFIX) for key in lww)
    keys: Iterable[str]
    if operations:
        keys = lww.keys() | once.keys() | incr.keys() | bases.keys() | adds.keys() | rems.keys()
    elif once:
        keys = [*lww, *(key for key in once if key not in lww)]
    else:
        keys = lww
    values: dict[str, Any] = {}
    for key in keys:
        last = lww.get(key)
        if unsets and KIND_SEPARATOR in key:
            unset = lww.get(key[: key.index(KIND_SEPARATOR)])
            if unset is not None and (last is None or (unset[0], unset[1]) > (last[0], last[1])):
                last = unset
        value, floor = None, None  # floor: operations after this stamp apply to the value
        if last is not None:
            floor = (last[0], last[1])
            value = last[2]
        first = once.get(key) if value is None else None
        if first is not None and (floor is None or (first[0], first[1]) > floor):
            value, floor = first[2], (first[0], first[1])
        if operations:
            if key in incr or key in bases:
                base = bases.get(key)
                if base is not None and floor is not None and (base[2], base[3]) <= floor:
                    base = None
                value = _incremented(value, incr.get(key, {}), base, floor)
            if key in adds or key in rems:
                value = _edited_list(value, adds.get(key, {}), rems.get(key, {}), floor)
        if value is not None:
            values[key] = value
    return values


def _after(entry: list[Any], floor: tuple[int, str] | None) -> bool:
    return floor is None or (entry[0], entry[1]) > floor


def _incremented(
    value: Any, increments: dict[str, list[Any]], base: Base | None, floor: Any
) -> Any:
    deltas = [e[2] for e in sorted(increments.values()) if _after(e, floor)]
    if base is not None:
        deltas.append(base[5] if isinstance(base[5], int) else Fraction(base[5]))
    if not deltas:
        return value
    start = value[1] if value is not None and value[0] == "number" else 0
    numbers = [start, *deltas]
    if all(isinstance(n, int) for n in numbers):
        return ["number", sum(numbers)]
    if any(isinstance(n, Fraction) for n in numbers):
        return ["number", float(sum(Fraction(n) for n in numbers))]  # exact, then rounded once
    return ["number", math.fsum(numbers)]  # exactly rounded: the same whatever the order


def _edited_list(
    value: Any, adds: dict[str, list[Any]], removes: dict[str, list[Any]], floor: Any
) -> Any:
    """Union semantics: an item is in the list if its latest append beats its latest remove."""
    base = list(value[1]) if value is not None and value[0] == "list" else []
    items = {_item_key(item): item for item in base}
    for item_key, added in sorted(adds.items(), key=lambda kv: kv[1]):
        removed = removes.get(item_key)
        if _after(added, floor) and (removed is None or added > removed):
            items.setdefault(item_key, json.loads(item_key))
    for item_key, removed in removes.items():
        last_add = adds.get(item_key)
        if _after(removed, floor) and (last_add is None or removed > last_add):
            items.pop(item_key, None)
    if value is None and not items:
        return None
    return ["list", list(items.values())]


def held_kinds(state: ProfileState) -> dict[str, dict[str, str]]:
    """Per custom attribute name, the kinds this profile holds a value of, each with the
    messageId of its latest write (what a refusal of that value names)."""
    held: dict[str, dict[str, str]] = {}
    for key in current_values(state):
        if key.startswith(CUSTOM_PREFIX) and KIND_SEPARATOR in key:
            name, kind = key[len(CUSTOM_PREFIX) :].split(KIND_SEPARATOR, 1)
            held.setdefault(name, {})[kind] = _latest_write(state, key)
    return held


def _latest_write(state: ProfileState, key: str) -> str:
    """The messageId of the latest write to ``key`` (it has a value, so there is one)."""
    stamps = [r for r in (state["lww"].get(key), state["once"].get(key)) if r is not None]
    for name in ("incr", "adds", "rems"):
        stamps += state.get(name, {}).get(key, {}).values()
    if key in state.get("base", {}):
        stamps.append(state["base"][key][2:4])
    return max((s[0], s[1]) for s in stamps)[1]


# A state's maps keyed by attribute key (custom ones with their kind), values or stamps.
_REGISTER_MAPS: Final = ("lww", "once", "incr", "base", "adds", "rems")


def register_kinds(state: ProfileState) -> Iterable[tuple[str, str]]:
    """(name, kind) of every custom register a state has, with or without a value now: the
    kinds ``held_kinds`` finds among them, without computing any value."""
    cut = len(CUSTOM_PREFIX)
    for part in _REGISTER_MAPS:
        registers: dict[str, Any] | None = state.get(part)
        if registers:
            for key in registers:
                if key.startswith(CUSTOM_PREFIX):
                    at = key.find(KIND_SEPARATOR, cut)
                    if at >= 0:
                        yield key[cut:at], key[at + 1 :]


def custom_names(state: ProfileState) -> set[str]:
    """Every custom attribute a state holds something of (without computing its values)."""
    return {
        key[len(CUSTOM_PREFIX) :].split(KIND_SEPARATOR, 1)[0]
        for part in _REGISTER_MAPS
        for key in state.get(part, {})
        if key.startswith(CUSTOM_PREFIX)
    }


def _custom(values: dict[str, Any], shown: Shown) -> dict[str, Any]:
    """The custom values a profile shows: each attribute's value of the kind decided for it."""
    out: dict[str, Any] = {}
    cut = len(CUSTOM_PREFIX)
    for key, value in values.items():
        if key.startswith(CUSTOM_PREFIX):
            at = key.find(KIND_SEPARATOR, cut)
            if at >= 0:
                name = key[cut:at]
                if shown(name) == key[at + 1 :]:
                    out[name] = value
    return dict(sorted(out.items()))


def render(state: ProfileState, shown: Shown) -> dict[str, Any]:
    """The Profile record published on the profiles topic."""
    values = current_values(state)
    # Every system attribute, unset ones as None or their opt-in default, then the values held
    # (a copy of one dict and a pass over the values, not a lookup per attribute)
    attributes: dict[str, Any] = _UNSET_ATTRIBUTES.copy()
    for key, value in values.items():
        if key in attributes:
            attributes[key] = value
    custom = _custom(values, shown)
    attributes["custom"] = {name: to_avro(value) for name, value in custom.items()}
    return {
        "profileId": state["profileId"],
        "workspaceId": state["workspaceId"],
        "userId": state["userId"],
        "anonymousIds": state["anonymousIds"],
        "attributes": attributes,
        "unsegmentable": [name for name, value in custom.items() if value[0] == "json"],
        "createdAt": state["createdAt"],
        "updatedAt": state["updatedAt"],
        "lastMessageId": state["lastMessageId"],
    }


def to_json_view(state: ProfileState, shown: Shown) -> dict[str, Any]:
    """The profile as plain JSON for the HTTP lookup: set attributes only, times in ISO-8601."""
    values = current_values(state)
    attributes: dict[str, Any] = {
        name: values[name] for name in SYSTEM_ATTRIBUTES if name in values
    }
    for name, default in OPT_IN_DEFAULTS.items():
        attributes.setdefault(name, default)
    custom = {}
    for name, (kind, payload) in _custom(values, shown).items():
        if kind == "datetime":
            payload = _iso(payload)
        elif kind == "json":
            payload = json.loads(payload)
        custom[name] = payload
    return {
        "profileId": state["profileId"],
        "workspaceId": state["workspaceId"],
        "userId": state["userId"],
        "anonymousIds": state["anonymousIds"],
        "attributes": {**attributes, "custom": custom},
        "createdAt": _iso(state["createdAt"]),
        "updatedAt": _iso(state["updatedAt"]),
        "lastMessageId": state["lastMessageId"],
    }


def _iso(epoch_millis: int) -> str:
    return dt.datetime.fromtimestamp(epoch_millis / 1000, dt.UTC).isoformat(timespec="milliseconds")
