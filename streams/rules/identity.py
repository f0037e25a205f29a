"""Identifiers: normalisation, junk refusal and the deterministic profile id.

A junk identifier ("guest", "null", an all-zero UUID...) would merge every visitor who sends it into
one person, irreversibly (Heap and PostHog both learned this and keep blocklists). So identifiers
are trimmed, length-checked and screened before they may key or merge anything.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

MAX_IDENTIFIER_LENGTH: Final = 100  # WebEngage and NotifyVisitors: ids of at most 100 characters

# Heap's blocklisted identify() values, compared exactly.
_HEAP_BLOCKLIST = (
    "anonymous",
    "guest",
    "undefined",
    "null",
    "true",
    "false",
    "not_authenticated",
    "NaN",
    "0",
    "[object Object]",
    "None",
    "none",
    "Email",
    "email",
)
# PostHog refuses these whatever their case...
_POSTHOG_CASE_INSENSITIVE = (
    "anonymous",
    "guest",
    "distinctid",
    "distinct_id",
    "id",
    "not_authenticated",
    "email",
    "undefined",
    "true",
    "false",
)
# ...and these exactly.
_POSTHOG_EXACT = ("[object Object]", "NaN", "None", "none", "null", "0")
_ZEROS: Final = re.compile(r"[0\-]+")  # nil UUIDs and any string of only 0 and -

# Stable namespace for profile ids: a replay of the same input yields the same ids everywhere.
PROFILE_NAMESPACE: Final = uuid.UUID("5b0f3f9e-4c1d-5e8a-9d7b-6c2a1e0f4b3d")
_NAMESPACE_BYTES: Final = PROFILE_NAMESPACE.bytes


class IdKind(StrEnum):
    """Which identifier a profile was first known by; part of its profile id."""

    USER = "user"
    ANONYMOUS = "anonymous"


def _with_quotes(values: Iterable[str]) -> set[str]:
    return {w for v in values for w in (v, f"'{v}'", f'"{v}"')}


@dataclass(frozen=True)
class Blocklist:
    """Identifier values refused as junk; the default is the union of Heap's and PostHog's lists.

    Configurable per workspace: ``extra`` adds exact values, ``extra_case_insensitive`` adds values
    compared without case.
    """

    exact: frozenset[str]
    case_insensitive: frozenset[str]

    @classmethod
    def default(
        cls, extra: Iterable[str] = (), extra_case_insensitive: Iterable[str] = ()
    ) -> Blocklist:
        exact = _with_quotes((*_HEAP_BLOCKLIST, *_POSTHOG_EXACT))
        folded = _with_quotes(
            v.lower() for v in (*_POSTHOG_CASE_INSENSITIVE, *extra_case_insensitive)
        )
        return cls(frozenset(exact | set(extra)), frozenset(folded))

    def refuses(self, value: str) -> bool:
        return (
            value in self.exact
            or value.lower() in self.case_insensitive
            or _ZEROS.fullmatch(value) is not None
        )


DEFAULT_BLOCKLIST: Final = Blocklist.default()


@dataclass(frozen=True)
class Blocklists:
    """The blocklist of each workspace: the default plus what that workspace adds.

    Built from the JSON the runtime reads from ``IDENTITY_STREAM_BLOCKLIST_FILE``::

        {"extra": ["test"], "extraCaseInsensitive": ["demo"],
         "workspaces": {"acme": {"extra": ["acme-guest"]}}}
    """

    default: Blocklist = DEFAULT_BLOCKLIST
    workspaces: Mapping[str, Blocklist] = field(default_factory=dict)

    def for_workspace(self, workspace_id: str) -> Blocklist:
        return self.workspaces.get(workspace_id, self.default)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Blocklists:
        base_exact = config.get("extra", [])
        base_folded = config.get("extraCaseInsensitive", [])
        return cls(
            Blocklist.default(base_exact, base_folded),
            {
                workspace: Blocklist.default(
                    [*base_exact, *extra.get("extra", [])],
                    [*base_folded, *extra.get("extraCaseInsensitive", [])],
                )
                for workspace, extra in config.get("workspaces", {}).items()
            },
        )


class IdentifierRefused(ValueError):
    """An identifier that must not key or merge anything; ``reason`` is the rejection code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def normalize_identifier(raw: str, blocklist: Blocklist = DEFAULT_BLOCKLIST) -> str:
    """Return the trimmed identifier, or raise IdentifierRefused saying why it is junk."""
    value = raw.strip()
    if not value:
        raise IdentifierRefused("empty_identifier", "identifier is empty or only whitespace")
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise IdentifierRefused(
            "identifier_too_long",
            f"identifier has {len(value)} characters, at most {MAX_IDENTIFIER_LENGTH} are allowed",
        )
    if blocklist.refuses(value):
        raise IdentifierRefused(
            "blocklisted_identifier", f"identifier {value!r} is a placeholder, not a person"
        )
    return value


@functools.lru_cache(maxsize=2**16)
def derive_profile_id(workspace_id: str, kind: IdKind, identifier: str) -> str:
    """UUIDv5 of workspace, kind and identifier: a replay gives the same person the same id.

    Remembered: a person's events name the same ids again, and the hash is 3 % of a worker."""
    name = f"{workspace_id}\x1f{kind}\x1f{identifier}"
    # uuid.uuid5 spelled out (RFC 4122 section 4.3): the uuid module's UUID object and its
    # str() are interpreted Python, ~2 us of the ~3 a new id cost.
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
