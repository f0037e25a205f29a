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

import json
from typing import Any

from streams.attribute_values import to_avro
from streams.events import CUSTOM_PREFIX, SYSTEM_ATTRIBUTES, IdentifyEvent

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
    }


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
        "lww": _join_registers(into["lww"], other["lww"], latest=True),
        "once": _join_registers(into["once"], other["once"], latest=False),
    }


def fold(state: ProfileState | None, event: IdentifyEvent, profile_id: str) -> ProfileState:
    """Apply one event to a profile (or start one)."""
    single = from_event(event, profile_id)
    return single if state is None else join(state, single)


def current_values(state: ProfileState) -> dict[str, Any]:
    """The value of every attribute that has one, by attribute key."""
    lww: dict[str, Register] = state["lww"]
    once: dict[str, Register] = state["once"]
    values: dict[str, Any] = {}
    for key in lww.keys() | once.keys():
        last, first = lww.get(key), once.get(key)
        if last is not None and last[2] is not None:
            values[key] = last[2]
        elif first is not None and (last is None or (first[0], first[1]) > (last[0], last[1])):
            values[key] = first[2]
    return values


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
        "createdAt": state["createdAt"],
        "updatedAt": state["updatedAt"],
        "lastMessageId": state["lastMessageId"],
    }
