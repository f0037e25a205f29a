"""A realistic, seeded identify stream: anonymous visits, logins on several devices, updates.

The demo, the integration tests and the benchmarks all draw from here, so what we test is what
we show. The same seed and sizes always give the same events, byte for byte.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from streams.tools.publisher import Message

BASE_TIME = 1_767_225_600_000  # 2026-01-01T00:00:00Z, so event times never depend on the clock
NS = "identitystream.v1."
FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
]
LAST = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie"]
CITIES = [
    ("TR", "tr", "Istanbul", "Europe/Istanbul"),
    ("US", "en", "Boston", "America/New_York"),
    ("IN", "hi", "Pune", "Asia/Kolkata"),
    ("BR", "pt", "Recife", "America/Recife"),
    ("DE", "de", "Berlin", "Europe/Berlin"),
]
PLANS = ["free", "startup", "growth", "premium", "enterprise"]
INTERESTS = ["shoes", "travel", "books", "music", "coffee", "cycling"]
JUNK_IDS = ["guest", "null", "undefined", "0", "00000000-0000-0000-0000-000000000000", "  "]


@dataclass(frozen=True)
class WorkloadSpec:
    people: int = 1000
    workspaces: int = 2
    anonymous_share: float = 0.3  # people who never log in
    max_devices: int = 3
    visits_per_device: int = 2
    events_after_login: int = 2
    junk_rate: float = 0.01  # events carrying a placeholder id or undecodable bytes
    shared_device_rate: float = 0.05  # someone else later logs in on a known user's device
    shuffle_window: int = 50  # how far an event may arrive out of order
    seed: int = 7


def _custom(rng: random.Random, ts: int) -> dict[str, Any]:
    pick = rng.random()
    if pick < 0.3:
        return {"plan": rng.choice(PLANS), "isPaying": rng.random() < 0.4}
    if pick < 0.55:
        return {"lifetimeValue": round(rng.uniform(0, 5000), 2), "orders": rng.randint(0, 40)}
    if pick < 0.75:
        return {"lastPurchaseAt": (NS + "DateTime", {"epochMillis": ts - rng.randint(0, 10**9)})}
    if pick < 0.9:
        items = rng.sample(INTERESTS, rng.randint(1, 3))
        return {"interests": (NS + "ListValue", {"items": items})}
    return {"preferences": (NS + "JsonObject", {"json": '{"theme": "dark", "digest": "weekly"}'})}


def _event(rng: random.Random, workspace: str, ts: int, n: int, **fields: Any) -> dict[str, Any]:
    return {
        "messageId": f"{workspace}-{n:08d}-{rng.getrandbits(32):08x}",
        "timestamp": ts,
        "workspaceId": workspace,
        **fields,
    }


def generate(spec: WorkloadSpec) -> list[Message]:
    """All events of the workload in arrival order (event times are shuffled within a window)."""
    rng = random.Random(spec.seed)
    timeline: list[tuple[int, Message]] = []
    counter = 0

    def emit(key: str | None, ts: int, workspace: str, **fields: Any) -> None:
        nonlocal counter
        counter += 1
        timeline.append((ts, (key, _event(rng, workspace, ts, counter, **fields))))

    for person in range(spec.people):
        workspace = f"ws-{person % spec.workspaces}"
        ts = BASE_TIME + rng.randint(0, 30 * 24 * 3600 * 1000)
        country, language, city, tz = rng.choice(CITIES)
        devices = [
            f"anon-{rng.getrandbits(48):012x}" for _ in range(rng.randint(1, spec.max_devices))
        ]
        for device in devices:
            for visit in range(spec.visits_per_device):
                ts += rng.randint(1_000, 3_600_000)
                first = {"country": country, "language": language, "city": city, "timezone": tz}
                emit(
                    device,
                    ts,
                    workspace,
                    anonymousId=device,
                    set={"custom": _custom(rng, ts)} if visit else None,
                    setOnce={**first, "custom": {"firstSeenVia": device[-2:]}},
                )
        if rng.random() < spec.anonymous_share:
            continue
        user_id = f"user-{person:07d}"
        first_name, last_name = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first_name}.{last_name}{person}@example.com".lower()
        for device in devices:  # log in on every device: each one identifies the same user
            ts += rng.randint(1_000, 600_000)
            emit(
                user_id,
                ts,
                workspace,
                anonymousId=device,
                userId=user_id,
                set={
                    "firstName": first_name,
                    "lastName": last_name,
                    "email": email,
                    "phone": f"+90555{person:07d}",
                    "emailOptIn": "OPTIN",
                    "custom": {"plan": rng.choice(PLANS)},
                },
            )
        for _ in range(spec.events_after_login):
            ts += rng.randint(1_000, 86_400_000)
            if rng.random() < 0.2:
                emit(
                    user_id,
                    ts,
                    workspace,
                    userId=user_id,
                    unsetCustom=["interests"],
                    set={"smsOptIn": rng.choice(["OPTIN", "OPTOUT"])},
                )
            else:
                emit(user_id, ts, workspace, userId=user_id, set={"custom": _custom(rng, ts)})
        if rng.random() < spec.shared_device_rate:
            # A second user on the same device: refused as a merge, their data stays theirs.
            ts += rng.randint(1_000, 600_000)
            other = f"user-{(person + 1) % spec.people:07d}"
            emit(
                other,
                ts,
                workspace,
                anonymousId=devices[0],
                userId=other,
                set={"custom": {"plan": rng.choice(PLANS)}},
            )
        if rng.random() < spec.junk_rate * 10:
            # A placeholder id next to a real one: the junk id is refused, the rest applies.
            ts += rng.randint(1_000, 60_000)
            emit(
                user_id,
                ts,
                workspace,
                userId=rng.choice(JUNK_IDS),
                anonymousId=devices[0],
                set={"city": city},
            )
    junk = int(len(timeline) * spec.junk_rate)
    for i in range(junk):
        ts = BASE_TIME + rng.randint(0, 30 * 24 * 3600 * 1000)
        if i % 2:
            timeline.append((ts, (None, b"not Avro, not JSON")))  # undecodable in any setup
        else:  # only a placeholder id: nothing identifies a person, the event is refused
            emit(
                None,
                ts,
                f"ws-{i % spec.workspaces}",
                userId=rng.choice(JUNK_IDS),
                set={"city": "Nowhere"},
            )
    timeline.sort(key=lambda item: item[0])
    return _shuffle_locally(rng, [message for _, message in timeline], spec.shuffle_window)


def _shuffle_locally(rng: random.Random, items: list[Message], window: int) -> list[Message]:
    """Late arrivals: each event may move up to ``window`` places away from its time order."""
    keyed = sorted(enumerate(items), key=lambda e: e[0] + rng.uniform(0, window))
    return [item for _, item in keyed]
