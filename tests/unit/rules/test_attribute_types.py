"""First-type-wins, through all stages, with any arrival order."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.rules import profile
from streams.rules.attribute_types import (
    NO_SOURCE,
    AttributeTypes,
    Catalog,
    custom_kinds,
    first_key,
    newly_hidden,
    refused_on_attach,
)
from streams.rules.custom_attributes import AttributePolicy
from streams.rules.events import CUSTOM_PREFIX, IdentifyEvent
from tests.factories import identify
from tests.simulation import simulate

KINDS = {"number": 5, "string": "five", "boolean": True}


def kinds_in(profiles, name):
    return {
        type(p["attributes"]["custom"][name]).__name__
        for p in profiles.values()
        if name in p["attributes"]["custom"]
    }


def test_first_value_fixes_the_type_for_the_workspace():
    records = [
        (None, identify(ts=1, user="a", set={"custom": {"x": 5}})),
        (None, identify(ts=2, user="b", set={"custom": {"x": "five", "y": 1}})),
        (None, identify(ts=3, user="c", workspace="other", set={"custom": {"x": "five"}})),
    ]
    out = simulate(records, partitions=1)
    a, b = (
        out.profiles[pid]
        for pid in sorted(out.profiles, key=lambda p: out.profiles[p]["userId"])
        if out.profiles[pid]["workspaceId"] == "ws"
    )
    assert a["attributes"]["custom"] == {"x": 5}
    assert b["attributes"]["custom"] == {"y": 1}  # y still applied; only x was refused
    (refusal,) = out.rejections
    assert (refusal["reason"], refusal["subject"], refusal["wholeMessage"]) == (
        "type_mismatch",
        "custom.x",
        False,
    )
    assert "number" in refusal["message"]
    other = [p for p in out.profiles.values() if p["workspaceId"] == "other"]
    assert other[0]["attributes"]["custom"] == {"x": "five"}  # workspaces type separately


def test_integers_and_doubles_are_one_number_type():
    out = simulate(
        [
            (None, identify(ts=1, user="a", set={"custom": {"x": 5}})),
            (None, identify(ts=2, user="b", set={"custom": {"x": 2.5}})),
        ],
        partitions=1,
    )
    assert out.rejections == []


def test_limit_per_type_per_workspace():
    policy = AttributePolicy(max_per_type=2)
    out = simulate(
        [(None, identify(ts=1, user="a", set={"custom": {"a": 1, "b": 2, "c": 3, "s": "x"}}))],
        partitions=1,
        policy=policy,
    )
    (profile,) = out.profiles.values()
    assert profile["attributes"]["custom"] == {"a": 1, "b": 2, "s": "x"}
    assert [(r["reason"], r["subject"]) for r in out.rejections] == [
        ("attribute_limit_reached", "custom.c")
    ]


def test_catalog_fixes_types_before_any_value():
    catalog = Catalog.from_config({"*": {"plan": "string"}, "acme": {"ltv": "number"}})
    out = simulate(
        [
            (
                None,
                identify(ts=1, user="a", workspace="acme", set={"custom": {"plan": 3, "ltv": "x"}}),
            )
        ],
        partitions=1,
        catalog=catalog,
    )
    assert sorted(r["subject"] for r in out.rejections) == ["custom.ltv", "custom.plan"]
    assert "declared in the catalog" in out.rejections[0]["message"]
    with pytest.raises(ValueError, match="not one of"):
        Catalog.from_config({"*": {"plan": "text"}})


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["u1", "u2", "u3"]), st.sampled_from(sorted(KINDS))),
        min_size=1,
        max_size=8,
    ),
    st.integers(0, 1000),
    st.integers(1, 4),
)
def test_one_type_everywhere_whatever_the_order(writes, seed, partitions):
    records = [
        (user, identify(ts=n, user=user, set={"custom": {"x": KINDS[kind]}}, message_id=f"m{n}"))
        for n, (user, kind) in enumerate(writes)
    ]
    out = simulate(records, partitions, seed)
    seen = kinds_in(out.profiles, "x")
    assert len(seen) == 1
    (winner,) = seen
    python_type = {"int": "number", "str": "string", "bool": "boolean"}[winner]
    # the earliest value decides, whatever reached a registry first
    assert python_type == writes[0][1]
    # Refusals are a decision log: a value refused under a decision that a late, earlier value
    # then overturned stays refused on the topic. Every value not shown in the end is refused.
    refused = {r["messageId"] for r in out.rejections if r["reason"] == "type_mismatch"}
    latest = {(user, kind): f"m{n}" for n, (user, kind) in enumerate(writes)}
    assert {m for (_, kind), m in latest.items() if kind != python_type} <= refused


def test_operations_are_typed_like_values():
    out = simulate(
        [
            (None, identify(ts=1, user="a", set={"custom": {"plan": "pro", "visits": 1}})),
            (None, {**identify(ts=2, user="a"), "increment": {"plan": 1, "visits": 2}}),
            (None, {**identify(ts=3, user="a"), "append": {"visits": ["x"], "tags": ["new"]}}),
        ],
        partitions=1,
    )
    (profile,) = out.profiles.values()
    assert profile["attributes"]["custom"] == {
        "plan": "pro",
        "visits": 3,
        "tags": ("identitystream.v1.ListValue", {"items": ["new"]}),
    }
    assert sorted((r["reason"], r["subject"]) for r in out.rejections) == [
        ("type_mismatch", "custom.plan"),
        ("type_mismatch", "custom.visits"),
    ]


_NAMES = ["a", "b", "c"]
_VALUES = {
    "string": "x",
    "number": 1,
    "boolean": True,
    "datetime": 1_000,
    "list": ["x"],
    "json": {"k": 1},
}


@settings(max_examples=400, deadline=None)
@given(
    writes=st.lists(
        st.tuples(
            st.sampled_from(["set", "set_once", "unset", "increment", "append", "remove"]),
            st.sampled_from(_NAMES),
            st.sampled_from(sorted(_VALUES)),
            st.integers(1, 9),
        ),
        min_size=1,
        max_size=8,
    ),
    firsts=st.lists(
        st.tuples(st.sampled_from(_NAMES), st.sampled_from(sorted(_VALUES)), st.integers(1, 9)),
        max_size=6,
    ),
    max_per_type=st.integers(1, 3),
)
def test_a_slice_attached_is_refused_what_its_values_show_of_hidden_kinds(
    writes, firsts, max_per_type
):
    """``refused_on_attach`` looks at the registers' kinds before computing any value: it
    refuses exactly what ``newly_hidden`` refuses of every value held, as if none was judged."""
    state = None
    for n, (op, name, kind, ts) in enumerate(writes):
        key = f"{CUSTOM_PREFIX}{name}"
        fields = {"set": {}, "set_once": {}, "unset": frozenset()}
        if op in ("set", "set_once"):
            fields[op] = {key: [kind, _VALUES[kind]]}
        elif op == "unset":
            fields["unset"] = frozenset([key])
        extra = {
            "increment": {key: 2} if op == "increment" else {},
            "append": {key: ["y"]} if op == "append" else {},
            "remove": {key: ["x"]} if op == "remove" else {},
        }
        event = IdentifyEvent(f"m{n}", ts, "ws", "d", None, None, **fields, **extra)
        part = profile.from_event(event, "p")
        state = part if state is None else profile.join(state, part)
    types = AttributeTypes(max_per_type=max_per_type)
    for name, kind, ts in firsts:
        types.add(first_key("ws", name, kind, 0), [ts, "m"])
    held = profile.held_kinds(state)
    expected = newly_hidden(state, dict.fromkeys(held), types, NO_SOURCE, 5)
    assert refused_on_attach(state, types, NO_SOURCE, 5) == expected


@settings(max_examples=300, deadline=None)
@given(
    sets=st.dictionaries(st.sampled_from([*_NAMES, "email"]), st.sampled_from(sorted(_VALUES))),
    once=st.dictionaries(st.sampled_from(_NAMES), st.sampled_from(sorted(_VALUES))),
    ops=st.lists(
        st.tuples(st.sampled_from(["increment", "append", "remove"]), st.sampled_from(_NAMES))
    ),
)
def test_custom_kinds_are_every_pair_once_in_order(sets, once, ops):
    """The pairs of an event with only sets (the fast path) and of any other event alike."""

    def keyed(values):
        return {
            (name if name == "email" else f"{CUSTOM_PREFIX}{name}"): [kind, _VALUES[kind]]
            for name, kind in values.items()
        }

    extra = {op: {} for op in ("increment", "append", "remove")}
    for op, name in ops:
        extra[op][f"{CUSTOM_PREFIX}{name}"] = 1 if op == "increment" else ["x"]
    event = IdentifyEvent(
        "m", 1, "ws", "d", None, None, keyed(sets), keyed(once), frozenset(), **extra
    )
    expected = {(n, k) for n, k in sets.items() if n != "email"} | set(once.items())
    expected |= {(name, "number" if op == "increment" else "list") for op, name in ops}
    assert custom_kinds(event) == sorted(expected)
