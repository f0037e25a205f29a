"""Rules for attribute names and long strings, configurable per deployment.

Names are case-sensitive, 1 to 49 characters (WebEngage and NotifyVisitors: "less than 50"), and
may not start with the reserved prefix. Strings must be under 1,000 characters: WebEngage
truncates longer ones, which is our default (with a warning on the rejections topic so nobody
wonders where the tail went); ``reject`` refuses them instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from streams.rules.attribute_values import InvalidAttribute, TypedValue

MAX_NAME_LENGTH: Final = 49
MAX_STRING_LENGTH: Final = 999


class LongStrings(StrEnum):
    TRUNCATE = "truncate"
    REJECT = "reject"


@dataclass(frozen=True)
class AttributePolicy:
    reserved_prefix: str = "we_"
    long_strings: LongStrings = LongStrings.TRUNCATE
    max_per_type: int = 25  # custom attributes of each type per workspace (WebEngage: 25)


def check_name(name: str, policy: AttributePolicy) -> None:
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidAttribute(
            "invalid_attribute_name",
            f"custom attribute name {name[:60]!r} has {len(name)} characters, 1 to "
            f"{MAX_NAME_LENGTH} are allowed",
        )
    if policy.reserved_prefix and name.startswith(policy.reserved_prefix):
        raise InvalidAttribute(
            "reserved_attribute_name",
            f"custom attribute {name!r}: names starting with {policy.reserved_prefix!r} are "
            "reserved",
        )


def limit_string(text: str, policy: AttributePolicy) -> tuple[str, bool]:
    """The string to store and whether it was truncated."""
    if len(text) <= MAX_STRING_LENGTH:
        return text, False
    if policy.long_strings is LongStrings.REJECT:
        raise InvalidAttribute(
            "value_too_long", f"{len(text)} characters, at most {MAX_STRING_LENGTH} are allowed"
        )
    return text[:MAX_STRING_LENGTH], True


def limit_value(value: TypedValue, policy: AttributePolicy) -> tuple[TypedValue, bool]:
    """Apply the string limit to a typed value (strings and strings inside lists)."""
    kind, payload = value
    if kind == "string":
        text, cut = limit_string(payload, policy)
        return [kind, text], cut
    if kind == "list":
        items, any_cut = [], False
        for item in payload:
            if isinstance(item, str):
                item, cut = limit_string(item, policy)
                any_cut = any_cut or cut
            items.append(item)
        return [kind, items], any_cut
    return value, False
