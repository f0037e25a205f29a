"""Typed custom attribute values: one plain, JSON-storable form between Avro and the rules.

A value is ``[kind, payload]`` with kind one of KINDS. Lists rather than tuples because the profile
state round-trips through JSON in the table changelog and must compare equal after it.
Integers and doubles are both ``number`` (WebEngage and NotifyVisitors have one number type).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any, Final

KINDS: Final[tuple[str, ...]] = ("string", "number", "boolean", "datetime", "list", "json")
TypedValue = list[Any]

_NS: Final = "identitystream.v1."


class InvalidAttribute(ValueError):
    """A value that cannot be stored; ``reason`` is the stable rejection code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _invalid(message: str) -> InvalidAttribute:
    return InvalidAttribute("invalid_value", message)


_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MILLI: Final = dt.timedelta(milliseconds=1)


def epoch_millis(value: dt.datetime | int) -> int:
    """Milliseconds since the epoch, exactly (no float rounding) for fastavro's timestamp-millis."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return (aware - _EPOCH) // _MILLI
    return int(value)


def from_avro(value: Any) -> TypedValue:
    """Typed form of one decoded Avro CustomValue union datum."""
    if isinstance(value, bool):
        return ["boolean", value]
    if isinstance(value, int):
        return ["number", value]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(f"number {value} is not finite")
        return ["number", value]
    if isinstance(value, str):
        return ["string", value]
    if isinstance(value, tuple):
        name, record = value
        if name == _NS + "DateTime":
            return ["datetime", epoch_millis(record["epochMillis"])]
        if name == _NS + "ListValue":
            return ["list", list(record["items"])]
        if name == _NS + "JsonObject":
            text = record["json"]
            try:
                parsed = json.loads(text)
            except ValueError as exc:
                raise _invalid(f"JsonObject is not valid JSON: {exc}") from exc
            if not isinstance(parsed, dict):
                raise _invalid("JsonObject must hold a JSON object")
            return ["json", text]
    raise _invalid(f"unsupported custom value {value!r}")


def to_avro(value: TypedValue) -> Any:
    """Avro union datum for a typed value, with the branch named so no union guessing happens."""
    kind, payload = value
    if kind == "string":
        return ("string", payload)
    if kind == "boolean":
        return ("boolean", payload)
    if kind == "number":
        return ("long", payload) if isinstance(payload, int) else ("double", payload)
    if kind == "datetime":
        return (_NS + "DateTime", {"epochMillis": payload})
    if kind == "list":
        return (_NS + "ListValue", {"items": payload})
    if kind == "json":
        return (_NS + "JsonObject", {"json": payload})
    raise ValueError(f"unknown value kind {kind!r}")
