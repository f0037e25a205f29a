"""Custom attribute types are a function of the input, not of arrival.

Any arrival order, partition count and crash history give the same decisions (the type of each
attribute is its earliest value's; the admitted ones are those whose earliest values are
earliest), the same profiles, and every value not shown is refused; including races between
partitions for a type and for the last slots of the per-type limit.
"""

from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.rules.attribute_types import AttributeTypes, firsts_of
from streams.rules.custom_attributes import AttributePolicy
from streams.rules.events import parse_identify
from tests.factories import identify
from tests.simulation import simulate
from topology.avro import IDENTIFY_EVENT

MAX_PER_TYPE = 2
VALUES = {"number": 7, "string": "seven", "boolean": True}
PYTHON_KIND = {int: "number", str: "string", bool: "boolean"}


@st.composite
def values_in_a_race(draw):
    records = []
    for n in range(draw(st.integers(1, 14))):
        user = draw(st.sampled_from(["u1", "u2", "u3"]))
        names = draw(st.lists(st.sampled_from("abcd"), min_size=1, max_size=3, unique=True))
        custom = {name: VALUES[draw(st.sampled_from(sorted(VALUES)))] for name in names}
        ts = draw(st.integers(0, 30))
        records.append(
            (user, identify(ts=ts, user=user, set={"custom": custom}, message_id=f"m{n}"))
        )
    return records


def events(records):
    return [
        parse_identify(IDENTIFY_EVENT.decode(IDENTIFY_EVENT.encode(r))).event for _, r in records
    ]


def decided(records) -> AttributeTypes:
    """The definition: every value of the input at once."""
    types = AttributeTypes(max_per_type=MAX_PER_TYPE)
    for event in events(records):
        for first in firsts_of(event, 0, types):
            types.add(first.key, first.value)
    return types


def shown(records, types):
    """Per user, each admitted attribute's latest value of its decided kind."""
    latest = {}
    for event in events(records):
        for key, (kind, value) in event.set.items():
            name = key.removeprefix("custom.")
            decision = types.decision("ws", name)
            if decision.shows() == kind:
                mine = latest.get((event.user_id, name))
                if mine is None or event.stamp > mine[0]:
                    latest[(event.user_id, name)] = (event.stamp, value)
    out = {}
    for (user, name), (_, value) in latest.items():
        out.setdefault(user, {})[name] = value
    return out


@settings(max_examples=150, deadline=None)
@given(
    values_in_a_race(),
    st.integers(0, 10_000),
    st.integers(1, 4),
    st.sampled_from([0.0, 0.3]),
)
def test_decisions_profiles_and_refusals_do_not_depend_on_arrival(
    records, seed, partitions, crash_rate
):
    out = simulate(
        records,
        partitions,
        seed,
        crash_rate,
        policy=AttributePolicy(max_per_type=MAX_PER_TYPE),
    )
    expected = decided(records)
    for name in "abcd":
        assert out.types.decision("ws", name) == expected.decision("ws", name), name
    want = shown(records, expected)
    got = {p["userId"]: p["attributes"]["custom"] for p in out.profiles.values()}
    assert {user: got.get(user, {}) for user in want} == want
    assert all(not custom for user, custom in got.items() if user not in want)
    # Every value a profile holds but does not show was refused, with the reason of the moment.
    refused = {(r["messageId"], r["subject"]) for r in out.rejections}
    for _, record in records:
        for name, value in record["set"]["custom"].items():
            decision = expected.decision("ws", name)
            user_values = [
                r
                for _, r in records
                if r["userId"] == record["userId"] and name in r["set"]["custom"]
            ]
            kind = PYTHON_KIND[type(value)]
            latest_of_kind = max(
                (r for r in user_values if PYTHON_KIND[type(r["set"]["custom"][name])] == kind),
                key=lambda r: (r["timestamp"], r["messageId"]),
            )
            if decision.shows() != kind and latest_of_kind is record:
                assert (record["messageId"], f"custom.{name}") in refused


def test_a_late_earlier_value_changes_the_type_and_the_profiles_follow():
    """The issue's example: numbers first to arrive, an earlier string arrives last."""
    records = [
        ("a", identify(ts=10_000, user="a", set={"custom": {"plan": 1}}, message_id="ma")),
        ("b", identify(ts=20_000, user="b", set={"custom": {"plan": 2}}, message_id="mb")),
        ("d", identify(ts=5_000, user="d", set={"custom": {"plan": "gold"}}, message_id="md")),
    ]
    out = simulate(records, partitions=4, seed=3)  # in this order: the numbers come first
    plans = {p["userId"]: p["attributes"]["custom"].get("plan") for p in out.profiles.values()}
    assert plans == {"a": None, "b": None, "d": "gold"}
    assert out.types.decision("ws", "plan").kind == "string"
    refused = sorted(r["messageId"] for r in out.rejections if r["reason"] == "type_mismatch")
    assert refused == ["ma", "mb"]
    assert all("earliest value is message md" in r["message"] for r in out.rejections)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.permutations(range(3)))
@example(seed=38, order=[0, 1, 2])  # the decision changes after the login attached the value
def test_values_a_device_brings_at_login_follow_a_changed_type(seed, order):
    """A device's value reaches the user's profile with the login's attach, not as an event of
    that profile's partition (the user "ada" and the device land on different partitions of 4);
    a later decision must still reach it."""
    visit = identify(ts=2_000, anon="dev", set={"custom": {"plan": 3}}, message_id="visit")
    login = identify(ts=3_000, anon="dev", user="ada", message_id="login")
    earlier = identify(ts=1_000, user="other", set={"custom": {"plan": "gold"}}, message_id="x")
    records = [(None, r) for r in (visit, login, earlier)]
    out = simulate([records[i] for i in order], 4, seed)
    (user,) = [p for p in out.profiles.values() if p["userId"] == "ada"]
    assert "plan" not in user["attributes"]["custom"]
    assert ("visit", "custom.plan") in {(r["messageId"], r["subject"]) for r in out.rejections}
