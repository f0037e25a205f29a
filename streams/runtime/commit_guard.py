"""Offset commits that never pass a message a stage has not handled.

faust-streaming 0.15.3 commits, per partition, the end of the first run of consecutive *acked*
offsets. Acked is not the same as handled, and under rebalances and restarts the difference loses
messages (``make chaos``, four SIGKILLs of one worker, lost 2 of 10,224 messages this way):

* faust acks the messages it *skips* without giving them to the agent: those fetched in an
  older consumer generation (prefetched before a rebalance) and those that arrive while flow is
  suspended (``Stream._py_aiter`` and the Cython iterator both ack ``skipped_value``). Their
  offsets join the acked run; the same offsets, fetched again in the new generation, may not have
  been handled yet when the next commit passes them.
* its guard against a hole at the head of the run only holds back for holes of two or more
  offsets (faust-streaming issue #606, pull request #707), so a single unhandled offset at the
  head of the run is committed over.

A commit that passes an unhandled message is loss after the next crash. So every stage reports
the messages it has handled, outputs sent (``HandledOffsets.mark``), and faust's commit point for
a partition is capped at the handled watermark *of the current generation*: a stage handles a
partition's messages in order from the position the generation started at (the committed offset
it was seeked to), so every offset below the watermark was handled in this generation. The cap
only ever lowers a commit; a lower commit means a few messages are handled again after a
crash, which every stage absorbs (they are idempotent).
"""

from __future__ import annotations

import logging
import weakref

import faust
from faust.transport.consumer import Consumer
from faust.types import TP, Message

from streams.runtime import faust_internals

logger = logging.getLogger(__name__)


class HandledOffsets:
    """Per partition, the highest offset a stage has handled, and in which generation."""

    def __init__(self) -> None:
        self._high: dict[TP, tuple[int, int]] = {}

    def mark(self, message: Message) -> None:
        """``message`` is handled: its table writes are made and its outputs sent."""
        self.mark_offset(message.tp, message.generation_id, message.offset)

    def mark_offset(self, tp: TP, generation: int, offset: int) -> None:
        """The message at ``offset`` of ``tp`` is handled (read in ``generation``)."""
        mark = (generation, offset)
        # generations only grow: a late message of an older one says nothing about this one
        if mark > self._high.get(tp, (-1, -1)):
            self._high[tp] = mark

    def limit(self, tp: TP, generation: int) -> int | None:
        """The highest offset that may be committed for ``tp`` (None: nothing may be)."""
        generation_high = self._high.get(tp)
        if generation_high is None or generation_high[0] != generation:
            return None
        return generation_high[1] + 1


def capped(proposed: int | None, limit: int | None) -> int | None:
    """The commit point: faust's proposal, never above what was handled."""
    if proposed is None or limit is None:
        return None
    return min(proposed, limit)


_handled: weakref.WeakKeyDictionary[faust.App, HandledOffsets] = weakref.WeakKeyDictionary()


def _guarded_commit_point(consumer: Consumer, tp: TP) -> int | None:
    """faust's commit point capped at the handled watermark.

    faust's version removes the offsets it commits from its bookkeeping; when the cap lowers the
    commit, the bookkeeping is restored and only the offsets below the cap are removed.
    """
    handled = _handled.get(consumer.app)
    if handled is None:  # an app that did not opt in (tools, tests of faust itself)
        return faust_internals.faust_commit_point(consumer, tp)
    limit = handled.limit(tp, consumer.app.consumer_generation_id)
    if limit is None:
        pending = faust_internals.acked_count(consumer, tp)
        if pending:
            logger.info(
                "commit of %s[%d] held: %d offsets acked, none handled in this generation",
                tp.topic,
                tp.partition,
                pending,
            )
        return None
    saved = faust_internals.acked_bookkeeping(consumer, tp)
    proposed = faust_internals.faust_commit_point(consumer, tp)
    offset = capped(proposed, limit)
    if offset is None or offset == proposed:
        return offset
    logger.warning(
        "commit of %s[%d] held at %d: faust would commit %d, past messages acked but not handled",
        tp.topic,
        tp.partition,
        offset,
        proposed,
    )
    saved.restore_from(offset)
    return offset


def guard(app: faust.App) -> HandledOffsets:
    """Cap ``app``'s commits at what its stages report handled; returns the register to mark."""
    faust_internals.install_commit_point(_guarded_commit_point)
    return _handled.setdefault(app, HandledOffsets())
