"""The hot-profile case of `make bench`: does an event cost more on a profile's 100,000th event?

A power user, a server-side integration that identifies on every page view, or a bot sends one
profile a long history. If the profile's state grew with that history, every event of it would
cost more, and so would everyone else's on its partition. This runs the declared stages
(topology.stages) in-process, in order, with every table value through JSON as the changelog
does, over N events of one user (each increments a counter and sets ``city``), and compares the
cost of its last events with that of events to fresh profiles. The broker is left out on purpose:
what is measured is what grows with a profile's history (rules and state encoding), not the
per-event cost of Kafka, which does not.
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from typing import Any

import orjson

from streams.rules.outcomes import Source
from streams.rules.steps import Policies
from streams.runtime.garbage_collection import between_batches, tune_for_batches
from topology.avro import IDENTIFY_EVENT
from topology.stages import IDENTIFY_EVENTS, STAGES

_BY_INPUT = {stage.input: stage for stage in STAGES}
BATCH = 1_000  # events between two of the collector's batch boundaries, as a worker's batch


class InProcess:
    """The stages run one record at a time, tables in dicts of JSON bytes."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, bytes]] = {s.table.name: {} for s in STAGES if s.table}
        self.policies = Policies()
        self.offset = 0

    def feed(self, raw: bytes) -> None:
        self.offset += 1
        queue: deque[tuple[str, str | None, Any]] = deque([(IDENTIFY_EVENTS, None, raw)])
        while queue:
            stream, key, value = queue.popleft()
            stage = _BY_INPUT[stream]
            if stage.table is None:
                stepped = stage.step(value, Source("in", 0, self.offset), self.policies, 0)
            else:
                table = self.tables[stage.table.name]
                before = table.get(key)
                state = orjson.loads(before) if before is not None else None
                stepped = stage.step(state, key, value, (self.offset, 0), self.policies, 0)
                if stepped.state is None:
                    table.pop(key, None)
                else:
                    table[key] = orjson.dumps(stepped.state)
            queue.extend(
                (e.output, e.key, orjson.loads(orjson.dumps(e.value)))
                for e in stepped.emits
                if e.output in _BY_INPUT
            )


def _event(n: int, user: str) -> bytes:
    return IDENTIFY_EVENT.encode(
        {
            "messageId": f"hot-{n:09d}",
            "timestamp": 1_767_225_600_000 + n * 1000,
            "workspaceId": "bench",
            "anonymousId": None,
            "userId": user,
            "set": {"city": f"city-{n % 7}"},
            "setOnce": None,
            "unset": [],
            "unsetCustom": [],
            "increment": {"pageViews": 1},
        }
    )


def _rate(run: InProcess, events: list[bytes]) -> float:
    started = time.perf_counter()
    for n, raw in enumerate(events, 1):
        run.feed(raw)
        if n % BATCH == 0:
            between_batches()  # as each stage's intake does after a batch
    return len(events) / (time.perf_counter() - started)


def measure(events: int = 100_000, sample: int = 1_000) -> dict[str, Any]:
    """Events/s of fresh profiles and of one profile's last ``sample`` events out of ``events``."""
    tune_for_batches()  # as the worker does, so the collector's cost is the worker's
    fresh = _rate(InProcess(), [_event(n, f"user-{n}") for n in range(sample)])
    hot = InProcess()
    hot_events = [_event(n, "power-user") for n in range(events)]
    first = _rate(hot, hot_events[:sample])
    _rate(hot, hot_events[sample:-sample])
    last = _rate(hot, hot_events[-sample:])
    profile_table = next(s.table.name for s in STAGES if s.input == "by_profile" and s.table)
    state_bytes = max(len(value) for value in hot.tables[profile_table].values())
    return {
        "events": events,
        "fresh_profile_events_per_s": round(fresh, 1),
        "hot_profile_first_events_per_s": round(first, 1),
        "hot_profile_last_events_per_s": round(last, 1),
        "ratio_last_to_fresh": round(last / fresh, 3),
        "state_bytes_after": state_bytes,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args(argv)
    print(orjson.dumps(measure(args.events), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
