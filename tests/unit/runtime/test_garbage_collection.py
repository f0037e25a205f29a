"""The collector between batches: what a batch leaves alive is frozen, cycles still go."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator

import pytest

from streams.runtime import garbage_collection


class Node:
    """Something that can form a reference cycle and be watched with a weak reference."""

    other: Node | None = None


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def _cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_what_a_batch_leaves_alive_is_frozen_and_still_freed_by_reference_counting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    garbage_collection.tune_for_batches()
    monkeypatch.setattr(garbage_collection._Full, "at", time.monotonic())  # collected just now
    kept = [Node() for _ in range(100)]
    frozen_before = gc.get_freeze_count()
    garbage_collection.between_batches()
    assert gc.get_freeze_count() >= frozen_before + len(kept)
    assert gc.get_count()[0] == 0  # the young generation starts empty
    watched = weakref.ref(kept[0])
    del kept
    assert watched() is None  # frozen, but freed as soon as nothing refers to it


def test_a_frozen_cycle_is_collected_by_the_next_full_collection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    garbage_collection.tune_for_batches()
    monkeypatch.setattr(garbage_collection._Full, "at", time.monotonic())  # collected just now
    cycle = _cycle()
    garbage_collection.between_batches()
    gc.collect()
    assert cycle() is not None  # frozen: out of every collection's sight
    monkeypatch.setattr(garbage_collection._Full, "at", 0.0)  # the clock says: collect all
    garbage_collection.between_batches()
    assert cycle() is None
