"""Who is calling the gateway, and how often they may: API keys and rate limits per workspace.

The seeds each name the caller's account their own way (WebEngage's license code in the path,
Heap's ``app_id`` in the body, NotifyVisitors' brandID and Herogi's app id as the Basic-auth
user) and each authenticate with a secret. Here a workspace holds its secrets and the other
names the seeds call it by, in one JSON document (a file, or the value itself)::

    {"acme": {"keys": ["s3cret", "sha256:9f86d0..."], "aliases": ["82617417"],
              "ratePerMinute": 5000}}

A secret identifies its workspace (a secret is refused when two workspaces share it); a name
the request carries must then be that workspace's id or one of its aliases, so a key of one
workspace never writes into another. Secrets may be stored as ``sha256:<hex>`` so the file
need not hold them in the clear; they are compared by digest either way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_RATE_PER_MINUTE = 5000.0  # WebEngage's default API call rate limit


@dataclass(frozen=True)
class Workspace:
    """A workspace as the gateway knows it: its id, the names the seeds use, its rate limit."""

    id: str
    aliases: frozenset[str] = frozenset()
    rate_per_minute: float = DEFAULT_RATE_PER_MINUTE

    def is_named(self, name: str) -> bool:
        return name == self.id or name in self.aliases


@dataclass(frozen=True)
class Credential:
    """What a request presents: a secret, and the workspace name a Basic-auth user gives."""

    secret: str
    named: str | None = None


def credential(authorization: str | None) -> Credential | None:
    """The credential of an ``Authorization`` header: ``Bearer <key>`` (WebEngage, Heap) or
    ``Basic`` (Herogi, NotifyVisitors) with ``base64(name:key)``, or a bare key as the token."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if not token:
        return None
    if scheme.lower() == "bearer":
        return Credential(token)
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return Credential(token)  # Herogi's AUTHKEY may be the key itself
    name, colon, secret = decoded.partition(":")
    if not colon:
        return Credential(token)
    return Credential(secret, name or None)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Keys:
    """The workspaces and their secrets, indexed by the secrets' SHA-256."""

    def __init__(self, workspaces: Mapping[str, Workspace], digests: Mapping[str, str]) -> None:
        self.workspaces = dict(workspaces)
        self._by_digest = dict(digests)

    @classmethod
    def from_config(cls, config: Any, default_rate: float = DEFAULT_RATE_PER_MINUTE) -> Keys:
        """From the parsed JSON document; a mistake in it stops the gateway at start."""
        if not isinstance(config, dict) or not config:
            raise ValueError("the gateway keys must be a JSON object of workspaces")
        workspaces: dict[str, Workspace] = {}
        digests: dict[str, str] = {}
        for workspace_id, entry in config.items():
            if not isinstance(entry, dict) or not entry.get("keys"):
                raise ValueError(f"workspace {workspace_id!r}: needs a non-empty 'keys' list")
            unknown = set(entry) - {"keys", "aliases", "ratePerMinute"}
            if unknown:
                raise ValueError(f"workspace {workspace_id!r}: unknown fields {sorted(unknown)}")
            rate = float(entry.get("ratePerMinute", default_rate))
            if not rate > 0:
                raise ValueError(f"workspace {workspace_id!r}: ratePerMinute must be positive")
            workspace = Workspace(workspace_id, frozenset(entry.get("aliases", ())), rate)
            workspaces[workspace_id] = workspace
            for key in entry["keys"]:
                digest = key[len("sha256:") :] if key.startswith("sha256:") else _digest(key)
                if digest in digests:
                    raise ValueError(
                        f"workspace {workspace_id!r}: a key of {digests[digest]!r} too; "
                        "a key must name one workspace"
                    )
                digests[digest] = workspace_id
        return cls(workspaces, digests)

    @classmethod
    def load(cls, source: str, default_rate: float = DEFAULT_RATE_PER_MINUTE) -> Keys:
        """From IDENTITY_STREAM_GATEWAY_KEYS: inline JSON, or the path of a JSON file."""
        text = source if source.lstrip().startswith("{") else Path(source).read_text()
        return cls.from_config(json.loads(text), default_rate)

    def authenticate(self, presented: Credential | None) -> Workspace | None:
        """The workspace the credential opens, None when it opens none."""
        if presented is None:
            return None
        workspace_id = self._by_digest.get(_digest(presented.secret))
        if workspace_id is None:
            return None
        workspace = self.workspaces[workspace_id]
        if presented.named is not None and not workspace.is_named(presented.named):
            return None
        return workspace


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """A token bucket per workspace: ``ratePerMinute`` calls, refilled continuously.

    A full bucket holds a minute's worth, so a workspace may spend its minute in a burst, as a
    per-minute quota allows, and then gets a call back every ``60 / rate`` seconds.
    """

    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def retry_after(self, workspace: Workspace) -> int | None:
        """None when the call may go ahead (and it is counted), else whole seconds to wait."""
        now = self.clock()
        capacity = workspace.rate_per_minute
        bucket = self._buckets.setdefault(workspace.id, _Bucket(capacity, now))
        per_second = capacity / 60.0
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * per_second)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / per_second))
