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
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from streams.rules.attribute_values import to_avro
from streams.rules.events import CUSTOM_PREFIX, SYSTEM_ATTRIBUTES, IdentifyEvent

ProfileState = dict[str, Any]
Register = list[Any]  # [event time, messageId, value or None for an unset]

OPT_IN_DEFAULTS = {
    "emailOptIn": "OPTIN",
    "smsOptIn": "OPTIN",
    "pushOptIn": "OPTIN",
    "webPushOptIn": "OPTIN",
    "whatsappOptIn": "OPTOUT",  # WebEngage: WhatsApp is off until explicitly opted in
    "locationOptIn": "OPTIN",
}


def from_event(event: IdentifyEvent, profile_id: str) -> ProfileState:
    """The profile that knows only this event."""
    stamp = (event.timestamp, event.message_id)
    lww: dict[str, Register] = {key: [*stamp, None] for key in event.unset}
    lww.update({key: [*stamp, value] for key, value in event.set.items()})
    return {
        "profileId": profile_id,
        "workspaceId": event.workspace_id,
        "userId": event.user_id,
        "anonymousIds": [event.anonymous_id] if event.anonymous_id is not None else [],
        "createdAt": event.timestamp,
        "updatedAt": event.timestamp,
        "lastMessageId": event.message_id,
        "lww": lww,
        "once": {key: [*stamp, value] for key, value in event.set_once.items()},
        # increments by messageId, so a redelivered increment counts once
        "incr": {key: {event.message_id: [*stamp, d]} for key, d in event.increment.items()},
        # list items: the stamp of their latest append and of their latest remove
        "adds": _item_stamps(event.append, stamp),
        "rems": _item_stamps(event.remove, stamp),
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
        if mine is None or _wins(reg, mine, latest):
            joined[key] = reg
    return joined


def join(into: ProfileState, other: ProfileState) -> ProfileState:
    """Combine two states of the same person; the result keeps ``into``'s profile id.

    Attribute registers, anonymous ids and times join commutatively. A known user id is never
    replaced by another: identity resolution does not route two known users into one profile.
    """
    latest = max(
        (into["updatedAt"], into["lastMessageId"]), (other["updatedAt"], other["lastMessageId"])
    )
    return {
        "profileId": into["profileId"],
        "workspaceId": into["workspaceId"],
        "userId": into["userId"] if into["userId"] is not None else other["userId"],
        "anonymousIds": sorted(set(into["anonymousIds"]) | set(other["anonymousIds"])),
        "createdAt": min(into["createdAt"], other["createdAt"]),
        "updatedAt": latest[0],
        "lastMessageId": latest[1],
        "lww": (lww := _join_registers(into["lww"], other["lww"], latest=True)),
        "once": _join_registers(into["once"], other["once"], latest=False),
        "incr": _prune(_join_nested(into.get("incr", {}), other.get("incr", {})), lww),
        "adds": _prune(_join_nested(into.get("adds", {}), other.get("adds", {})), lww),
        "rems": _prune(_join_nested(into.get("rems", {}), other.get("rems", {})), lww),
    }


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


def _prune(
    ops: dict[str, dict[str, list[Any]]], lww: dict[str, Register]
) -> dict[str, dict[str, list[Any]]]:
    """Drop operations older than the attribute's latest set or unset: they can never count."""
    pruned = {}
    for key, entries in ops.items():
        floor = lww.get(key)
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
    nested = {
        name: {
            key: kept
            for key, entries in state.get(name, {}).items()
            if (kept := {e: v for e, v in entries.items() if after(v)})
        }
        for name in ("incr", "adds", "rems")
    }
    times = [r[0] for r in (*lww.values(), *once.values())] + [
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
    return {**state, "lww": lww, "once": once, **nested, "createdAt": created}


def fold(state: ProfileState | None, event: IdentifyEvent, profile_id: str) -> ProfileState:
    """Apply one event to a profile (or start one)."""
    single = from_event(event, profile_id)
    return single if state is None else join(state, single)


def current_values(state: ProfileState) -> dict[str, Any]:
    """The value of every attribute that has one, by attribute key."""
    lww: dict[str, Register] = state["lww"]
    once: dict[str, Register] = state["once"]
    incr, adds, rems = state.get("incr", {}), state.get("adds", {}), state.get("rems", {})
    values: dict[str, Any] = {}
    for key in lww.keys() | once.keys() | incr.keys() | adds.keys() | rems.keys():
        last, first = lww.get(key), once.get(key)
        value, floor = None, None  # floor: operations after this stamp apply to the value
        if last is not None:
            floor = (last[0], last[1])
            value = last[2]
        if value is None and first is not None and (floor is None or (first[0], first[1]) > floor):
            value, floor = first[2], (first[0], first[1])
        if key in incr:
            value = _incremented(value, incr[key], floor)
        if key in adds or key in rems:
            value = _edited_list(value, adds.get(key, {}), rems.get(key, {}), floor)
        if value is not None:
            values[key] = value
    return values


def _after(entry: list[Any], floor: tuple[int, str] | None) -> bool:
    return floor is None or (entry[0], entry[1]) > floor


def _incremented(value: Any, increments: dict[str, list[Any]], floor: Any) -> Any:
    deltas = [e[2] for e in sorted(increments.values()) if _after(e, floor)]
    if not deltas:
        return value
    start = value[1] if value is not None and value[0] == "number" else 0
    numbers = [start, *deltas]
    if all(isinstance(n, int) for n in numbers):
        return ["number", sum(numbers)]
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
        added = adds.get(item_key)
        if _after(removed, floor) and (added is None or removed > added):
            items.pop(item_key, None)
    if value is None and not items:
        return None
    return ["list", list(items.values())]


def render(state: ProfileState) -> dict[str, Any]:
    """The Profile record published on the profiles topic."""
    values = current_values(state)
    attributes: dict[str, Any] = {name: values.get(name) for name in SYSTEM_ATTRIBUTES}
    for name, default in OPT_IN_DEFAULTS.items():
        if attributes[name] is None:
            attributes[name] = default
    attributes["custom"] = {
        key[len(CUSTOM_PREFIX) :]: to_avro(value)
        for key, value in sorted(values.items())
        if key.startswith(CUSTOM_PREFIX)
    }
    return {
        "profileId": state["profileId"],
        "workspaceId": state["workspaceId"],
        "userId": state["userId"],
        "anonymousIds": state["anonymousIds"],
        "attributes": attributes,
        "unsegmentable": sorted(
            key[len(CUSTOM_PREFIX) :]
            for key, value in values.items()
            if key.startswith(CUSTOM_PREFIX) and value[0] == "json"
        ),
        "createdAt": state["createdAt"],
        "updatedAt": state["updatedAt"],
        "lastMessageId": state["lastMessageId"],
    }


def to_json_view(state: ProfileState) -> dict[str, Any]:
    """The profile as plain JSON for the HTTP lookup: set attributes only, times in ISO-8601."""
    values = current_values(state)
    attributes: dict[str, Any] = {
        name: values[name] for name in SYSTEM_ATTRIBUTES if name in values
    }
    for name, default in OPT_IN_DEFAULTS.items():
        attributes.setdefault(name, default)
    custom = {}
    for key, value in sorted(values.items()):
        if not key.startswith(CUSTOM_PREFIX):
            continue
        kind, payload = value
        if kind == "datetime":
            payload = _iso(payload)
        elif kind == "json":
            payload = json.loads(payload)
        custom[key[len(CUSTOM_PREFIX) :]] = payload
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
