"""Stall watchdog: a worker that has work and makes no progress exits, so it is restarted.

faust-streaming 0.15.3 can leave a worker assigned and "ready" but no longer fetching after a
rebalance (seen in ``make chaos`` after the group shrank, and with standby replicas). Nothing
inside the worker recovers from that, while a restart always does: processing is at-least-once
and every stage idempotent, so a restart costs a little repeated work and loses nothing. So the
worker watches its own input partitions and, when one has messages waiting beyond what the
stages handled and the handled offset has not moved for ``stall_timeout_s``, it logs why and
exits with ``EXIT_STALLED`` for its supervisor (Kubernetes, compose ``restart:``, systemd) to
start it again, as a liveness probe would. Rebalances and table recovery are not stalls: the
clock only runs while the worker is neither.

What is waiting is asked of the broker (a librdkafka ListOffsets), not of faust's consumer: the
consumer's highwater is what its last fetch saw, so a partition it stopped fetching looked as if
nothing were waiting, and a stuck worker went unnoticed (``make chaos``, 2026-11-30).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import faust
from confluent_kafka import Consumer, TopicPartition

from streams.runtime import faust_internals

if TYPE_CHECKING:  # the intake imports this module for its exit code
    from streams.runtime.intake import HandledOffsets

EXIT_STALLED = 75  # EX_TEMPFAIL: try again
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """One input partition, as the watchdog sees it at one moment."""

    handled: Hashable  # anything that changes when the stage handles a message of it
    waiting: bool  # messages beyond what was handled are in the partition


class StallWatch:
    """Which partitions have been waiting without progress for at least ``timeout_s``."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._since: dict[Hashable, tuple[Hashable, float]] = {}

    def pause(self) -> None:
        """A rebalance or a recovery: progress is not expected, start counting afresh after."""
        self._since.clear()

    def observe(self, now: float, partitions: Mapping[Hashable, Progress]) -> list[Hashable]:
        """The partitions stalled at ``now``, given what each looks like now."""
        stalled = []
        for tp in list(self._since):
            if tp not in partitions:
                del self._since[tp]
        for tp, progress in partitions.items():
            if not progress.waiting:
                self._since.pop(tp, None)
                continue
            seen = self._since.get(tp)
            if seen is None or seen[0] != progress.handled:
                self._since[tp] = (progress.handled, now)
            elif now - seen[1] >= self.timeout_s:
                stalled.append(tp)
        return stalled


def install(
    app: faust.App,
    topics: set[str],
    handled: HandledOffsets,
    timeout_s: float,
    kafka_config: dict[str, str],
) -> None:
    """Check ``app``'s input partitions every few seconds; exit the process on a stall."""
    watch = StallWatch(timeout_s)
    offsets = Consumer({**kafka_config, "group.id": f"stall-watchdog-{uuid.uuid4().hex}"})

    def end_offsets(tps: list[faust.types.TP]) -> dict[faust.types.TP, int]:
        return {
            tp: offsets.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=5)[1]
            for tp in tps
        }

    @app.timer(interval=min(10.0, timeout_s / 4), name="stall_watchdog")
    async def check_progress() -> None:
        if app.rebalancing or not faust_internals.recovery_completed(app):
            watch.pause()
            return
        consumer = app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic in topics]
        never_committed = [
            tp for tp in tps if faust_internals.committed_offset(consumer, tp) is None
        ]
        try:
            ends = await asyncio.get_running_loop().run_in_executor(None, end_offsets, tps)
            earliest = await consumer.earliest_offsets(*never_committed) if never_committed else {}
        except Exception as exc:  # the broker is away: nobody makes progress, look again later
            logger.warning("stall watchdog: offsets unavailable (%r)", exc)
            watch.pause()
            return
        generation = app.consumer_generation_id
        partitions = {}
        for tp in tps:
            start = handled.limit(tp, generation)
            if start is None:  # nothing handled yet in this generation: from its start
                start = faust_internals.committed_offset(consumer, tp) or earliest.get(tp, 0)
            partitions[tp] = Progress(handled=start, waiting=ends.get(tp, 0) > start)
        stalled = watch.observe(time.monotonic(), partitions)
        if stalled:
            logger.error(
                "stalled: %s have messages waiting and nothing was handled for %.0fs; "
                "exiting (code %d) so that the supervisor restarts this worker",
                ", ".join(f"{tp.topic}[{tp.partition}]" for tp in stalled),
                timeout_s,
                EXIT_STALLED,
            )
            logging.shutdown()
            os._exit(EXIT_STALLED)
