"""The worker's garbage collector: what a batch leaves alive is not walked again and again.

Each batch decodes thousands of envelope records, events and table values into short-lived
dicts and lists, and leaves behind the new table states it wrote (kept decoded by
``changelogs.RecentValues``): tens of thousands of lists and dicts per batch that live on.
CPython collects when allocations outnumber deallocations by a threshold, wherever that
happens, and a young collection walks everything allocated since the last one that is still
alive, then walks the survivors again in the middle generation. With the young threshold at
50,000 a loaded worker still spent ~11 % of its main thread collecting (50,000 peers events:
38 young collections of ~14 ms each; py-spy charged them to whatever allocated), and a young
collection between two batches instead of inside one cost as much: what it walks is mostly
the states that live on.

Almost nothing here forms reference cycles (every collection of a 50,000-event run together
freed ~2,300 objects), so each stage calls ``between_batches`` after a batch: what is alive
then is frozen (``gc.freeze``, constant time), out of the collector's sight, and freed by
reference counting as usual when it dies. Every ``FULL_EVERY_S`` everything is unfrozen and
collected once (~25-90 ms on a loaded worker), so a cycle lives at most that long. The
automatic thresholds stay, as the safety net of a batch that allocates far more than usual.
"""

from __future__ import annotations

import gc
import time

# Automatic young collections only after 500,000 net allocations (CPython's default: 700), more
# than a batch of 1,000 events leaves alive; older ones as often relative to them as before.
THRESHOLDS = (500_000, 20, 20)
FULL_EVERY_S = 60.0  # between collections of everything


def tune_for_batches() -> None:
    """Collect rarely, and never again walk what exists at start-up (modules, the App)."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


class _Full:
    """When everything was last collected."""

    at = time.monotonic()


def between_batches() -> None:
    """A batch is done: freeze what is alive, and collect everything every ``FULL_EVERY_S``."""
    now = time.monotonic()
    if now - _Full.at >= FULL_EVERY_S:
        _Full.at = now
        gc.unfreeze()
        gc.collect()
    gc.freeze()
