"""The rules' per-event value types write their own ``__init__`` (mypyc compiles it, and not
the one ``dataclass`` would generate: see ``outcomes.Emit``). Each must still take every declared
field, by name and in declaration order, keep each where it belongs, and default as declared."""

import dataclasses
from typing import Any

import pytest

from streams.rules.events import IdentifyEvent, Parsed
from streams.rules.outcomes import Deferred, Emit, Rejection, Source
from streams.rules.routing import Routed
from streams.rules.steps import Stepped

EVENT = {
    "message_id": "m-1",
    "timestamp": 1_700_000_000_000,
    "workspace_id": "ws",
    "anonymous_id": "anon-1",
    "user_id": "user-1",
    "profile_id": "profile-1",
    "set": {"city": "Oslo"},
    "set_once": {"country": "NO"},
    "unset": frozenset({"email"}),
    "increment": {"custom.visits": 1},
    "append": {"custom.tags": ["a"]},
    "remove": {"custom.old": ["b"]},
    "erase": "block",
}

# Every field, in declaration order, no two of one value.
FULL: list[tuple[type, dict[str, Any]]] = [
    (Emit, {"output": "profiles", "key": "key", "value": {"value": 1}}),
    (Source, {"topic": "in", "partition": 3, "offset": 42, "timestamp": 1_700_000_000_000}),
    (Deferred, {"build": lambda: {"built": True}}),
    (
        Stepped,
        {
            "state": {"state": 1},
            "emits": [Emit("rejections", "m", {})],
            "outcome": "applied",
            "renders": (("ws", "plan"),),
            "firsts": (("first-key", [1, "m"]),),
        },
    ),
    (IdentifyEvent, EVENT),
    (Parsed, {"event": IdentifyEvent(**EVENT), "rejections": [Rejection("invalid_email", "no")]}),
    (Routed, {"emits": [Emit("by_profile", "p", {})], "event": IdentifyEvent(**EVENT)}),
]

# Only the fields without a default.
LEAST = [
    Source("in", 3, 42),
    Stepped({"state": 1}, []),
    IdentifyEvent("m-1", 1, "ws", None, "user-1", None, {}, {}, frozenset()),
    Routed([]),
]


def _name(case: Any) -> str:
    return case.__name__ if isinstance(case, type) else type(case).__name__


@pytest.mark.parametrize(("cls", "given"), FULL, ids=_name)
def test_init_takes_and_keeps_every_field(cls, given):
    assert [field.name for field in dataclasses.fields(cls)] == list(given)
    for value in (cls(**given), cls(*given.values())):
        for name, argument in given.items():
            assert getattr(value, name) == argument, name


@pytest.mark.parametrize("value", LEAST, ids=_name)
def test_left_out_fields_take_their_declared_defaults(value):
    for field in dataclasses.fields(value):
        if field.default is not dataclasses.MISSING:
            assert getattr(value, field.name) == field.default, field.name
        elif field.default_factory is not dataclasses.MISSING:
            assert getattr(value, field.name) == field.default_factory(), field.name
