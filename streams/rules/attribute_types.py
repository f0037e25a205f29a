"""First-type-wins typing of custom attributes: one registry per workspace, on its partition.

WebEngage: "the first datapoint synced defines the data type"; NotifyVisitors: "the data type must
be consistent". So the first value to reach the registry fixes an attribute's type for the whole
workspace, on every partition and worker: every custom value goes through the registry stage,
keyed by workspace, before it may touch a profile. A value is therefore never applied under a type
that later loses the race, and the registry survives restarts in its changelog topic. A declared
catalog (Herogi makes you create attributes first) fixes types before any value arrives.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from streams.rules.attribute_values import KINDS
from streams.rules.custom_attributes import AttributePolicy
from streams.rules.events import CUSTOM_PREFIX, from_json, to_json
from streams.rules.outcomes import BY_PROFILE, Emit, Rejection, Source, rejected

# {"types": {name: {"kind", "messageId", "ts"}}}
TypeRegistry = dict[str, Any]


@dataclass(frozen=True)
class Catalog:
    """Declared attribute types: ``{"*": {"plan": "string"}, "acme": {"ltv": "number"}}``.

    ``*`` applies to every workspace; a workspace's own entries win over it.
    """

    declared: dict[str, dict[str, str]] = field(default_factory=dict)

    def kind_of(self, workspace_id: str, name: str) -> str | None:
        own = self.declared.get(workspace_id, {})
        return own.get(name) or self.declared.get("*", {}).get(name)

    @classmethod
    def from_config(cls, declared: dict[str, dict[str, str]]) -> Catalog:
        """The catalog of ``IDENTITY_STREAM_ATTRIBUTE_CATALOG``'s JSON; unknown types refused."""
        for workspace, types in declared.items():
            for name, kind in types.items():
                if kind not in KINDS:
                    raise ValueError(f"catalog {workspace}.{name}: {kind!r} is not one of {KINDS}")
        return cls(declared)


def on_custom_values(
    registry: TypeRegistry | None,
    workspace_id: str,
    payload: dict[str, Any],
    policy: AttributePolicy,
    catalog: Catalog,
    now: int,
) -> tuple[TypeRegistry, list[Emit]]:
    """Type-check an event's custom values; forward the accepted ones to their profile."""
    types: dict[str, dict[str, Any]] = dict((registry or {}).get("types", {}))
    event = from_json(payload["event"])
    source = Source.from_json(payload["source"])
    emits: list[Emit] = []
    accepted: set[str] = set()
    per_kind = Counter(entry["kind"] for entry in types.values())
    kinds = {key: kind for key, (kind, _) in {**event.set_once, **event.set}.items()}
    kinds.update(dict.fromkeys(event.increment, "number"))
    kinds.update(dict.fromkeys([*event.append, *event.remove], "list"))
    refused: list[tuple[str, str, str]] = []  # (attribute key, reason, message)
    for key, kind in sorted(kinds.items()):
        name = key[len(CUSTOM_PREFIX) :]
        fixed = catalog.kind_of(workspace_id, name) or types.get(name, {}).get("kind")
        if fixed is None and per_kind[kind] >= policy.max_per_type:
            limit = (
                f"workspace {workspace_id!r} already has {policy.max_per_type} {kind} attributes"
            )
            refused.append((key, "attribute_limit_reached", f"{key}: {limit}"))
        elif fixed is None:
            types[name] = {"kind": kind, "messageId": event.message_id, "ts": event.timestamp}
            per_kind[kind] += 1
            accepted.add(key)
        elif fixed != kind:
            first = types.get(name)
            since = (
                f"first seen in message {first['messageId']}"
                if first
                else "declared in the catalog"
            )
            message = f"{key} is a {fixed} attribute in workspace {workspace_id!r} ({since})"
            refused.append((key, "type_mismatch", f"{message}; a {kind} value was refused"))
        else:
            accepted.add(key)
    emits += [
        rejected(
            Rejection(reason, message, key, whole=False),
            source,
            now,
            event.message_id,
            event.workspace_id,
        )
        for key, reason, message in refused
    ]
    if accepted:
        typed = {
            op: {k: v for k, v in values.items() if k in accepted}
            for op, values in (
                ("set", event.set),
                ("setOnce", event.set_once),
                ("increment", event.increment),
                ("append", event.append),
                ("remove", event.remove),
            )
        }
        output, key = payload["next"]
        forward: dict[str, Any] = {
            "event": {**to_json(event), **typed},
            "source": payload["source"],
        }
        if output == BY_PROFILE:
            forward["op"] = "event"
        emits.append(Emit(output, key, forward))
    return {"types": types}, emits
