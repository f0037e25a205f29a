"""Stage 3: a profile assembled from its own events and the slices of the devices it owns.

Keeping each device's slice apart inside the profile (instead of folding it in for good) is what
makes a merge reversible: when the linking stage learns that a device belongs to someone else,
detaching the slice gives exactly the profile as if the device had never been merged. The
published profile is the join of all parts, so it is the same whatever order parts arrived in.

Commands (from the routing and linking stages), keyed by profile id:
  event   - an event addressed to this profile itself (its user, or its profile id)
  member  - an event of a device this profile currently owns
  attach  - a device joins this profile, with its whole slice so far
  detach  - a device leaves this profile
  recheck - nothing for the profile: earliest custom values a routing partition found (or none),
            for the runtime to take and render again what they change (``rerender``)
"""

from __future__ import annotations

from functools import partial
from typing import Any

from streams.rules import deduplication, device_folds, profile
from streams.rules.attribute_types import (
    NO_SOURCE,
    AttributeTypes,
    Mark,
    newly_hidden,
    refusals,
    refused_on_attach,
)
from streams.rules.events import IdentifyEvent, blocks, from_json, refused_as_erased
from streams.rules.outcomes import BY_ANONYMOUS, PROFILES, Deferred, Emit, Position, Source

Assembled = dict[str, Any]  # {"own": ProfileState | None, "members": {device key: ProfileState}}


def on_command(
    assembled: Assembled | None,
    profile_id: str,
    command: dict[str, Any],
    types: AttributeTypes,
    now: int,
    at: Position | None = None,
) -> tuple[Assembled | None, list[Emit]]:
    """Apply one command; return the new record (None once empty) and the profile to publish.

    ``at`` is the command's position in this stage's input partition, which is read in order:
    a command at or before the last position applied is a redelivery (after a crash) whose event
    is already folded in; everything else it implies is sent again. ``types`` decides which
    custom values the profile shows.
    """
    own = assembled["own"] if assembled else None
    members: dict[str, profile.ProfileState] = dict(assembled["members"]) if assembled else {}
    erased: list[Any] | None = assembled.get("erasedAt") if assembled else None
    # Devices an erasure sent away: told again on a redelivered erasure (the first telling may
    # have been lost with a crash, while the table already shows them gone).
    sent_away: list[str] = list(assembled.get("erasedMembers", [])) if assembled else []
    messages = assembled.get("messages") if assembled else None  # its own events' ids
    emits: list[Emit] = []
    applied = assembled.get("at") if assembled else None
    redelivered = at is not None and applied is not None and list(at) <= applied
    op = command["op"]
    if op in ("event", "member"):
        event = from_json(command["event"])
        if event.erase:
            floor = event.erasure_floor
            erased = max(erased or floor, floor)
            own = profile.forget(own, erased)
            messages = deduplication.forget(messages, erased)
            if deduplication.routed_here(command):  # a retry of the call is a duplicate
                messages = deduplication.remember(messages, event.timestamp, event.message_id, at)
            sent_away = sorted({*sent_away, *members})
            for member in sent_away:  # the person's devices are forgotten too
                emits.append(Emit(BY_ANONYMOUS, member, {"erase": erased}))
            members = {}
        elif erased is not None and list(event.stamp) <= erased:
            # Older than an erasure: stays forgotten, even when it arrives late. Once the erasure
            # blocks, that is every event, and each is refused visibly.
            if blocks(erased):
                subject = "anonymousId" if op == "member" else _addressed_by(event)
                emits.append(refused_as_erased(event, subject, command["source"], now))
        elif redelivered:
            emits += refusals(event, types, Source.from_json(command["source"]), now)
        elif op == "event":
            own = profile.fold(own, event, profile_id)
            if deduplication.routed_here(command):  # this record settles its retries
                messages = deduplication.remember(messages, event.timestamp, event.message_id, at)
            emits += refusals(event, types, Source.from_json(command["source"]), now)
        else:
            member = command["member"]
            known = members.get(member)
            members[member] = device_folds.fold_at_profile(known, event, member, command["event"])
            emits += refusals(event, types, Source.from_json(command["source"]), now)
    elif op == "attach":
        member, claim = command["member"], command.get("claim")
        if erased is not None and claim is not None and claim <= erased:
            # A login from before this user's erasure, arrived late: that link is erased too.
            emits.append(Emit(BY_ANONYMOUS, member, {"erase": erased}))
        else:
            state = profile.forget(command["state"], erased) if erased else command["state"]
            if state is not None:
                emits += refused_on_attach(state, types, NO_SOURCE, now)
                known = members.get(member)
                members[member] = state if known is None else profile.join(known, state)
    elif op == "detach":
        members.pop(command["member"], None)
    else:
        raise ValueError(f"unknown command {op!r}")

    record: Assembled = {"own": own, "members": members}
    if messages:
        record["messages"] = messages
    if at is not None or applied is not None:
        record["at"] = max(list(at or []), applied or [])
    if erased:
        record |= {"erasedAt": erased, "erasedMembers": sent_away}
    if own is None and not members:
        # Nothing left (a device moved to its user, or the person was erased): the profile no
        # longer exists. The tombstone goes out even if the record was already gone: this may be
        # a redelivery whose first tombstone was lost with a crash. An erasure is remembered.
        return (record if erased else None), [*emits, Emit(PROFILES, profile_id, None)]
    return record, [
        *emits,
        Emit(PROFILES, profile_id, Deferred(partial(_render, own, members, profile_id, types))),
    ]


def _render(
    own: profile.ProfileState | None,
    members: dict[str, profile.ProfileState],
    profile_id: str,
    types: AttributeTypes,
) -> dict[str, Any]:
    combined = combine(own, members, profile_id)
    return profile.render(combined, types.shown(combined["workspaceId"]))


def rerender(
    assembled: Assembled,
    profile_id: str,
    changed: dict[str, dict[str, Mark]],
    types: AttributeTypes,
    now: int,
) -> list[Emit]:
    """The profile again, and refusals of the values it stops showing, if it holds a custom
    attribute whose decision changed (``changed``: workspace -> name -> decision before)."""
    if assembled.get("own") is None and not assembled.get("members"):
        return []
    combined = combine(assembled.get("own"), assembled.get("members", {}), profile_id)
    workspace_id = combined["workspaceId"]
    before = changed.get(workspace_id, {})
    if not before.keys() & profile.held_kinds(combined).keys():
        return []
    return [
        *newly_hidden(combined, before, types, NO_SOURCE, now),
        Emit(PROFILES, profile_id, profile.render(combined, types.shown(workspace_id))),
    ]


def _addressed_by(event: IdentifyEvent) -> str:
    """The identifier that sent an event to its profile (see routing)."""
    return "userId" if event.user_id is not None else "profileId"


def combine(
    own: profile.ProfileState | None, members: dict[str, profile.ProfileState], profile_id: str
) -> profile.ProfileState:
    """The profile's state: the join of its own part and every member slice, in a fixed order."""
    parts = ([own] if own is not None else []) + [members[k] for k in sorted(members)]
    combined = parts[0]
    for part in parts[1:]:
        combined = profile.join(combined, part, disjoint=True)
    return {**combined, "profileId": profile_id}
