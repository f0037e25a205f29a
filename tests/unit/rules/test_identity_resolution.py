"""Identity resolution through all three stages, with every delivery order Kafka allows."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.rules import profile
from streams.rules.attribute_types import AttributeTypes, firsts_of
from streams.rules.events import parse_identify
from streams.rules.identity import IdKind, derive_profile_id
from tests.factories import identify
from tests.simulation import simulate
from topology.avro import IDENTIFY_EVENT, PROFILE

WS = "ws"


def pid_user(user, ws=WS):
    return derive_profile_id(ws, IdKind.USER, user)


def pid_anon(anon, ws=WS):
    return derive_profile_id(ws, IdKind.ANONYMOUS, anon)


def run(records, partitions=4, seed=0, crash_rate=0.0):
    keyed = [(r.get("userId") or r.get("anonymousId"), r) for r in records]
    return simulate(keyed, partitions, seed, crash_rate)


def test_anonymous_visits_merge_into_the_user_at_login():
    records = [
        identify(ts=1, anon="A", set={"city": "Oslo", "custom": {"plan": "free"}}),
        identify(ts=2, anon="A", set_once={"country": "NO"}),
        identify(ts=3, anon="A", user="U", set={"email": "u@x.io"}),
        identify(ts=4, anon="A", set={"custom": {"plan": "pro"}}),  # after login: follows A to U
    ]
    for seed in range(5):
        out = run(records, seed=seed)
        assert set(out.profiles) == {pid_user("U")}
        p = out.profiles[pid_user("U")]
        assert p["userId"] == "U"
        assert p["anonymousIds"] == ["A"]
        attrs = p["attributes"]
        assert (attrs["city"], attrs["country"], attrs["email"]) == ("Oslo", "NO", "u@x.io")
        assert attrs["custom"]["plan"] == "pro"
        merge = out.merges[pid_anon("A")]
        assert merge["intoProfileId"] == pid_user("U")
        assert merge["userId"] == "U"
        assert merge["eventTime"] == dt.datetime.fromtimestamp(0.003, dt.UTC)
        assert out.rejections == []


def test_pre_merge_snapshot_is_the_anonymous_profile_when_it_was_absorbed():
    records = [identify(ts=1, anon="A", set={"city": "Oslo"})]
    before = run(records).profiles[pid_anon("A")]
    out = run([*records, identify(ts=2, anon="A", user="U")], partitions=1)
    assert out.merges[pid_anon("A")]["absorbed"] == before


def test_several_devices_fold_into_one_user():
    records = [
        identify(ts=1, anon="phone", set={"city": "Oslo"}),
        identify(ts=2, anon="laptop", set={"language": "nb"}),
        identify(ts=3, anon="phone", user="U"),
        identify(ts=4, anon="laptop", user="U"),
    ]
    out = run(records)
    assert list(out.profiles) == [pid_user("U")]
    assert out.profiles[pid_user("U")]["anonymousIds"] == ["laptop", "phone"]
    assert {m["anonymousId"] for m in out.merges.values()} == {"phone", "laptop"}


def test_a_device_never_moves_to_a_second_user():
    first = identify(ts=1, anon="A", user="U1", set={"city": "Oslo"})
    second = identify(ts=2, anon="A", user="U2", set={"city": "Rome"})
    anon = identify(ts=3, anon="A", set={"custom": {"seen": True}})
    for order in ([first, second, anon], [second, first, anon], [anon, second, first]):
        out = simulate([(None, r) for r in order], partitions=1)  # exact arrival order
        u1, u2 = out.profiles[pid_user("U1")], out.profiles[pid_user("U2")]
        assert u1["anonymousIds"] == ["A"] and u2["anonymousIds"] == []
        assert u1["attributes"]["city"] == "Oslo" and u2["attributes"]["city"] == "Rome"
        assert u1["attributes"]["custom"] == {"seen": True}
        assert u2["attributes"]["custom"] == {}
        (refusal,) = out.rejections
        assert refusal["reason"] == "merge_refused"
        assert refusal["messageId"] == second["messageId"]
        assert refusal["subject"] == "anonymousId" and not refusal["wholeMessage"]
        assert out.merges[pid_anon("A")]["intoProfileId"] == pid_user("U1")


def test_a_late_earlier_login_moves_the_device_and_undoes_the_wrong_merge_exactly():
    u2_alone = [identify(ts=5, user="U2", set={"city": "Rome"})]
    device = [
        identify(ts=1, anon="A", set={"custom": {"plan": "free"}}),
        identify(ts=4, anon="A", user="U2"),
    ]
    late = identify(ts=2, anon="A", user="U1")
    out = simulate([(None, r) for r in [*u2_alone, *device, late]], partitions=1)
    expected_u2 = run([*u2_alone, replace_anon(device[1])]).profiles[pid_user("U2")]
    assert out.profiles[pid_user("U2")]["attributes"] == expected_u2["attributes"]
    assert out.profiles[pid_user("U2")]["anonymousIds"] == []
    assert out.profiles[pid_user("U1")]["attributes"]["custom"] == {"plan": "free"}
    merge = out.merges[pid_anon("A")]
    assert (merge["intoProfileId"], merge["previousProfileId"]) == (pid_user("U1"), pid_user("U2"))


def replace_anon(record):
    return {**record, "anonymousId": None}


def test_workspaces_are_isolated():
    out = run(
        [
            identify(ts=1, workspace="w1", anon="A", user="U", set={"city": "Oslo"}),
            identify(ts=1, workspace="w2", anon="A", set={"city": "Rome"}),
        ]
    )
    assert out.profiles[pid_user("U", "w1")]["attributes"]["city"] == "Oslo"
    assert out.profiles[pid_anon("A", "w2")]["attributes"]["city"] == "Rome"
    assert len(out.profiles) == 2


# --- any arrival order, any partitioning -----------------------------------------------------


def oracle(records):
    """Final profiles computed straight from the definition, with no stages or routing."""
    events = [
        parse_identify(IDENTIFY_EVENT.decode(IDENTIFY_EVENT.encode(r))).event for r in records
    ]
    owner, cause = {}, {}
    for e in sorted(
        (e for e in events if e.anonymous_id and e.user_id),
        key=lambda e: (e.timestamp, e.message_id),
    ):
        owner.setdefault((e.workspace_id, e.anonymous_id), e.user_id)
        cause.setdefault((e.workspace_id, e.anonymous_id), (e.user_id, e.timestamp, e.message_id))
    states = {}

    def add(pid, event):
        states[pid] = profile.fold(states.get(pid), event, pid)

    for e in events:
        if e.user_id:
            add(pid_user(e.user_id, e.workspace_id), replace(e, anonymous_id=None))
        if e.anonymous_id:
            user = owner.get((e.workspace_id, e.anonymous_id))
            part = (
                e
                if not e.user_id
                else replace(
                    e,
                    user_id=None,
                    set={},
                    set_once={},
                    unset=frozenset(),
                    increment={},
                    append={},
                    remove={},
                )
            )
            pid = (
                pid_user(user, e.workspace_id) if user else pid_anon(e.anonymous_id, e.workspace_id)
            )
            add(pid, part)
    types = AttributeTypes()  # the earliest value of each attribute decides its type
    for e in events:
        for first in firsts_of(e, 0, types):
            types.add(first.key, first.value)
    rendered = {}
    for pid, state in states.items():
        shown = types.shown(state["workspaceId"])
        rendered[pid] = PROFILE.decode(
            PROFILE.encode(profile.render({**state, "profileId": pid}, shown))
        )
    return rendered, owner, cause


@st.composite
def scenarios(draw):
    records = []
    for n in range(draw(st.integers(1, 14))):
        anon = draw(st.sampled_from([None, "A1", "A2", "A3"]))
        user = (
            draw(st.sampled_from([None, "U1", "U2"]))
            if anon
            else draw(st.sampled_from(["U1", "U2"]))
        )
        attrs = draw(
            st.dictionaries(
                st.sampled_from(["city", "company"]), st.sampled_from(["x", "y", "z"]), max_size=2
            )
        )
        records.append(
            identify(
                ts=draw(st.integers(0, 5)),
                anon=anon,
                user=user,
                workspace=draw(st.sampled_from(["ws", "ws", "other"])),
                set=attrs or None,
                message_id=f"m{n:02d}",
            )
        )
    return records


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.integers(0, 10_000), st.integers(1, 4), st.sampled_from([0.0, 0.0, 0.2]))
def test_profiles_and_merges_do_not_depend_on_order_partitions_or_crashes(
    records, seed, parts, crash_rate
):
    """Any arrival order, partition count, and crash-and-redeliver history: the same result."""
    want, owner, cause = oracle(records)
    out = run(records, partitions=parts, seed=seed, crash_rate=crash_rate)
    assert out.profiles == want
    assert {
        (m["workspaceId"], m["anonymousId"]): (
            m["userId"],
            m["eventTime"].timestamp() * 1000,
            m["causeMessageId"],
        )
        for m in out.merges.values()
    } == cause
    refused = [r["messageId"] for r in out.rejections]
    if not crash_rate:
        assert len(refused) == len(set(refused)), "without crashes a claim is refused at most once"
    # Every user who claimed a device someone else owns is told so at least once.
    by_id = {r["messageId"]: r for r in records}
    losers = {
        (r["workspaceId"], r["anonymousId"], r["userId"])
        for r in records
        if r["anonymousId"]
        and r["userId"]
        and owner[(r["workspaceId"], r["anonymousId"])] != r["userId"]
    }
    told = {(by_id[m]["workspaceId"], by_id[m]["anonymousId"], by_id[m]["userId"]) for m in refused}
    assert losers <= told
