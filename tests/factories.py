"""Small builders for identify records, shared by unit and integration tests."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count()


def identify(
    *,
    ts: int = 1_000,
    workspace: str = "ws",
    user: str | None = None,
    anon: str | None = None,
    set: dict[str, Any] | None = None,
    set_once: dict[str, Any] | None = None,
    unset: list[str] | None = None,
    unset_custom: list[str] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """An IdentifyEvent record as a producer would build it."""
    return {
        "messageId": message_id or f"m-{next(_ids):06d}",
        "timestamp": ts,
        "workspaceId": workspace,
        "anonymousId": anon,
        "userId": user,
        "set": set,
        "setOnce": set_once,
        "unset": unset or [],
        "unsetCustom": unset_custom or [],
    }
