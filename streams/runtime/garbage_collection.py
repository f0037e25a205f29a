"""The worker's garbage collector settings.

Each batch decodes thousands of envelope records, events and table values into short-lived
dicts and lists. With CPython's default thresholds (a young collection every 700 net
allocations) the collector ran dozens of times per batch, each time walking everything the
batch still held and, every hundred runs, the whole heap of faust, aiokafka and RocksDB
wrappers: py-spy charged it to whatever allocated (envelope decoding looked like a tenth of the
worker). Almost nothing here forms reference cycles, so collecting rarely costs little memory.
"""

from __future__ import annotations

import gc

# Young collections every 50,000 net allocations instead of 700; older ones as often relative
# to them as before.
THRESHOLDS = (50_000, 20, 20)


def tune_for_batches() -> None:
    """Collect rarely, and never again walk what exists at start-up (modules, the App)."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
