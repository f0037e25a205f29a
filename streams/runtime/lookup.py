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

import faust

from streams.rules import assembly, profile
from streams.rules.attribute_types import AttributeTypes
from streams.rules.identity import IdKind, derive_profile_id
from streams.runtime.changelogs import ChangelogTable
from streams.runtime.faust_internals import table_owners
from streams.runtime.settings import Settings
from topology.topics import partition_for


def profile_view(
    assembled: dict[str, Any] | None, profile_id: str, types: AttributeTypes
) -> dict[str, Any] | None:
    """The JSON profile for a profile-state record, None when there is no such profile."""
    if assembled is None or (assembled.get("own") is None and not assembled.get("members")):
        return None
    state = assembly.combine(assembled.get("own"), assembled.get("members", {}), profile_id)
    return profile.to_json_view(state, types.shown(state["workspaceId"]))


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


def serve(
    app: faust.App,
    settings: Settings,
    profile_states: ChangelogTable,
    anonymous_ids: ChangelogTable,
    types: AttributeTypes,
) -> None:
    """The profile lookup pages (see streams.runtime.lookup), each answered by the owning worker."""
    topology = settings.topology()

    def owner(table: faust.Table, changelog: str, key: str) -> str | None:
        """URL of the worker holding ``key``; None when it is this one.

        Computed from the key's own bytes, as the stages' producer placed it: faust's router
        would JSON-encode a raw key first and pick the wrong worker.
        """
        partition = partition_for(key, settings.partitions)
        for url, topics in table_owners(app, table.name).items():
            if partition in topics.get(changelog, ()):
                return None if url == str(app.conf.canonical_url) else url
        raise LookupError("partition not assigned")

    def read(table: ChangelogTable, key: str) -> Any:
        """``key``'s value here, the writes the table holds until its next flush included."""
        return table.read(partition_for(key, settings.partitions), key)

    def refused(view: Any, request: Any) -> Any:
        if settings.api_token and request.headers.get("Authorization") != (
            f"Bearer {settings.api_token}"
        ):
            return view.json(
                {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        if app.rebalancing:
            return view.json({"error": "rebalancing"}, status=503, headers={"Retry-After": "2"})
        return None

    async def ask(view: Any, request: Any, url: str, path: str) -> Any:
        headers = {k: v for k, v in request.headers.items() if k == "Authorization"}
        async with app.http_client.get(f"{url}{path}", headers=headers) as response:
            return view.json(await response.json(), status=response.status)

    async def owned_profile(view: Any, request: Any, profile_id: str) -> Any:
        try:
            url = owner(profile_states, topology.profile_state_changelog.name, profile_id)
        except LookupError:
            return view.json({"error": "rebalancing"}, status=503, headers={"Retry-After": "2"})
        if url is not None:
            return await ask(view, request, url, f"/profiles/{profile_id}")
        found = profile_view(read(profile_states, profile_id), profile_id, types)
        if found is None:
            return view.json({"error": f"no profile {profile_id}"}, status=404)
        return view.json(found)

    @app.page("/profiles/{profile_id}")
    async def by_profile_id(view: Any, request: Any, profile_id: str) -> Any:
        """A profile by its profileId."""
        return refused(view, request) or await owned_profile(view, request, profile_id)

    @app.page("/workspaces/{workspace_id}/users/{user_id}")
    async def by_user_id(view: Any, request: Any, workspace_id: str, user_id: str) -> Any:
        """A known user's profile."""
        profile_id = user_profile_id(workspace_id, user_id)
        return refused(view, request) or await owned_profile(view, request, profile_id)

    @app.page("/workspaces/{workspace_id}/anonymous/{anonymous_id}")
    async def by_anonymous_id(view: Any, request: Any, workspace_id: str, anonymous_id: str) -> Any:
        """The profile holding a device: asked of the device's worker, then of the profile's."""
        if (stop := refused(view, request)) is not None:
            return stop
        key = device_key(workspace_id, anonymous_id)
        try:
            url = owner(anonymous_ids, topology.anonymous_ids_changelog.name, key)
        except LookupError:
            return view.json({"error": "rebalancing"}, status=503, headers={"Retry-After": "2"})
        if url is not None:
            return await ask(view, request, url, request.path)
        profile_id = device_profile_id(read(anonymous_ids, key), key)
        if profile_id is None:
            return view.json({"error": f"no device {anonymous_id}"}, status=404)
        return await owned_profile(view, request, profile_id)
