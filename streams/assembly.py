"""Stage 3: a profile assembled from its own events and the slices of the devices it owns.

Keeping each device's slice apart inside the profile (instead of folding it in for good) is what
makes a merge reversible: when the linking stage learns that a device belongs to someone else,
detaching the slice gives exactly the profile as if the device had never been merged. The
published profile is the join of all parts, so it is the same whatever order parts arrived in.

Commands (from the routing and linking stages), keyed by profile id:
  event  - an event addressed to this profile itself (its user, or its profile id)
  member - an event of a device this profile currently owns
  attach - a device joins this profile, with its whole slice so far
  detach - a device leaves this profile
"""

from __future__ import annotations

from typing import Any

from streams import profile
from streams.events import from_json
from streams.outcomes import PROFILES, Emit

Assembled = dict[str, Any]  # {"own": ProfileState | None, "members": {device key: ProfileState}}


def on_command(
    assembled: Assembled | None, profile_id: str, command: dict[str, Any]
) -> tuple[Assembled | None, list[Emit]]:
    """Apply one command; return the new record (None once empty) and the profile to publish."""
    own = assembled["own"] if assembled else None
    members: dict[str, profile.ProfileState] = dict(assembled["members"]) if assembled else {}
    op = command["op"]
    if op == "event":
        own = profile.fold(own, from_json(command["event"]), profile_id)
    elif op == "member":
        member = command["member"]
        members[member] = profile.fold(members.get(member), from_json(command["event"]), member)
    elif op == "attach":
        member, state = command["member"], command["state"]
        members[member] = profile.join(members[member], state) if member in members else state
    elif op == "detach":
        members.pop(command["member"], None)
    else:
        raise ValueError(f"unknown command {op!r}")

    if own is None and not members:
        # Everything left (a device moved to its user): the profile no longer exists. The
        # tombstone goes out even if the record was already gone: this may be a redelivery whose
        # first tombstone was lost with a crash.
        return None, [Emit(PROFILES, profile_id, None)]
    return {"own": own, "members": members}, [
        Emit(PROFILES, profile_id, profile.render(combine(own, members, profile_id)))
    ]


def combine(
    own: profile.ProfileState | None, members: dict[str, profile.ProfileState], profile_id: str
) -> profile.ProfileState:
    """The profile's state: the join of its own part and every member slice, in a fixed order."""
    parts = ([own] if own is not None else []) + [members[k] for k in sorted(members)]
    combined = parts[0]
    for part in parts[1:]:
        combined = profile.join(combined, part)
    return {**combined, "profileId": profile_id}
