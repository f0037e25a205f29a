"""Records published again when the custom attribute types they were rendered with change.

A stage that renders by the workspaces' attribute types (``StageSpec.rerender``: the profiles)
keeps, per partition, which decisions its published records reflect (``Rendered``, in its own
table under ``RENDERED_KEY``, so it moves and recovers with the partition). At the end of each
batch, per partition in it: if the decisions moved on (the batch may have brought earliest
values, see ``streams.rules.steps.route_message``), every record of the partition is given to
the stage's ``rerender``, and what that publishes goes out with the batch. The new marks are
stored once the broker has the batch's records: a crash in between renders again, never
forgets to. A partition this worker is newly given, or that the attribute-firsts reader saw
decisions change for, gets a ``recheck`` record (``Rechecks``) so that it catches up even
without input.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust

from streams.rules.attribute_types import Rendered
from streams.rules.outcomes import Emit
from streams.rules.steps import Policies
from streams.runtime import envelopes
from streams.runtime.changelogs import ChangelogTable
from streams.runtime.delivery import Outbox, Record
from topology.stages import StageSpec

logger = logging.getLogger(__name__)

RENDERED_KEY = "\x00rendered"  # never a profile id (UUIDs) nor a device key
RECHECK = {"op": "recheck", "firsts": []}
RECHECK_DEBOUNCE_S = 0.1


class Rerendering:
    """The marks of one rendering stage's partitions, and its catching up (module docstring)."""

    def __init__(self, stage: StageSpec, table: ChangelogTable, policies: Policies) -> None:
        assert stage.rerender is not None
        self._rerender = stage.rerender
        self._table = table
        self._policies = policies
        self._current: dict[int, Rendered] = {}  # what the records sent so far reflect
        self._stored: dict[int, dict[str, Any]] = {}  # what the table holds

    def forget_partitions(self) -> None:
        """After a rebalance: read the marks from the table again (they may have moved)."""
        self._current.clear()
        self._stored.clear()

    def note(self, partition: int, renders: tuple[tuple[str, str], ...]) -> None:
        """Records of this partition were rendered with the decisions of now."""
        if renders:
            self._marks(partition).note(renders, self._policies.types)

    def catch_up(self, partitions: list[int]) -> list[Emit]:
        """What ``partitions`` (a batch's) publish again, if the decisions moved on."""
        types = self._policies.types
        emits: list[Emit] = []
        for partition in partitions:
            marks = self._marks(partition)
            stale = marks.stale(types)
            if not stale:
                continue
            started, now = time.monotonic(), time.time_ns() // 1_000_000
            count = 0
            for key, value in self._table.items(partition):
                if key != RENDERED_KEY:
                    emits += self._rerender(value, key, stale, self._policies, now)
                    count += 1
            self._current[partition] = marks.caught_up(types)
            logger.info(
                "custom attribute types changed (%s): %d records of partition %d rendered "
                "again in %.2fs",
                ", ".join(f"{w}.{n}" for w, names in stale.items() for n in names),
                count,
                partition,
                time.monotonic() - started,
            )
        return emits

    def marks(self, partitions: list[int]) -> dict[int, dict[str, Any]]:
        """The marks of a batch's ``partitions`` as its records reflect them, to ``store`` once
        the broker has those records (the next batches may move the marks on meanwhile)."""
        return {p: dict(self._current[p].marks) for p in partitions if p in self._current}

    def store(self, marks: dict[int, dict[str, Any]]) -> None:
        """Write ``marks`` where they changed, now that the broker has what they stand for (the
        table writes them out with the stage's next flush)."""
        for partition, marked in marks.items():
            # a partition this worker lost meanwhile (forget_partitions) is its new owner's
            if partition in self._current and marked != self._stored.get(partition):
                self._table.write(partition, RENDERED_KEY, marked)
                self._stored[partition] = marked

    def _marks(self, partition: int) -> Rendered:
        """This partition's marks (read from the table once)."""
        if partition not in self._current:
            stored = self._table.read(partition, RENDERED_KEY) or {}
            self._stored[partition] = dict(stored)
            self._current[partition] = Rendered(stored)
        return self._current[partition]


class Rechecks:
    """A ``recheck`` record to each partition of a rendering stage this worker holds, when the
    decisions change (at most every ``RECHECK_DEBOUNCE_S``) and when partitions are assigned."""

    def __init__(self, app: faust.App, topic: str, partitions: int, outbox: Outbox) -> None:
        self._app = app
        self._topic = topic
        self._partitions = partitions
        self._outbox = outbox
        self._wanted = asyncio.Event()
        self._sending = False

    def want(self, *_: object) -> None:
        self._wanted.set()

    async def sent(self) -> None:
        """Until no recheck is wanted or on its way (they are in the stream, or none was due)."""
        while self._wanted.is_set() or self._sending:
            await asyncio.sleep(RECHECK_DEBOUNCE_S / 2)

    async def run(self, ready: asyncio.Event) -> None:
        await ready.wait()
        while True:
            await self._wanted.wait()
            self._sending = True
            try:
                await asyncio.sleep(RECHECK_DEBOUNCE_S)
                self._wanted.clear()
                assigned = self._app.consumer.assignment()
                held = sorted(tp.partition for tp in assigned if tp.topic == self._topic)
                records = []
                for partition in held:
                    key = envelopes.broadcast_key(partition, self._partitions)
                    envelope = envelopes.seal([(key, RECHECK)])[0]
                    records.append(Record(self._topic, None, envelope, partition))
                await self._outbox.deliver(records)
            finally:
                self._sending = False
