"""Profile lookup over HTTP (NotifyVisitors /user/userData), served by the worker that owns it.

A profile lives in the partition of its profileId, on one worker; a device's link to its user
lives in the partition of the device. So a lookup by anonymousId first asks the device's owner
which profile holds the device, then the profile's owner for the profile. faust's router forwards
a request to the worker owning a key (every worker knows the assignment), so any worker answers
any lookup.

    GET /profiles/{profileId}
    GET /workspaces/{workspaceId}/users/{userId}
    GET /workspaces/{workspaceId}/anonymous/{anonymousId}

JSON out; 404 for an unknown profile; 503 with Retry-After while the group rebalances (the
answer may be about to move); 401 without the bearer token when IDENTITY_STREAM_API_TOKEN is set.
"""

from __future__ import annotations

from typing import Any

from streams.rules import assembly, profile
from streams.rules.identity import IdKind, derive_profile_id


def profile_view(assembled: dict[str, Any] | None, profile_id: str) -> dict[str, Any] | None:
    """The JSON profile for a profile-state record, None when there is no such profile."""
    if assembled is None or (assembled.get("own") is None and not assembled.get("members")):
        return None
    state = assembly.combine(assembled.get("own"), assembled.get("members", {}), profile_id)
    return profile.to_json_view(state)


def user_profile_id(workspace_id: str, user_id: str) -> str:
    return derive_profile_id(workspace_id, IdKind.USER, user_id)


def device_key(workspace_id: str, anonymous_id: str) -> str:
    return derive_profile_id(workspace_id, IdKind.ANONYMOUS, anonymous_id)


def device_profile_id(record: dict[str, Any] | None, key: str) -> str | None:
    """The profile holding a device: its owner's, else its own anonymous profile; None if unseen."""
    if record is None:
        return None
    owner = record.get("owner")
    if owner is None:
        return key
    return user_profile_id(record["workspaceId"], owner["userId"])
