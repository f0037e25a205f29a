"""Outcome counters: every input message ends applied (perhaps with a warning), duplicate, or
rejected.

Later stages can still refuse parts (a type mismatch, a refused merge); those are counted as
warnings by reason, so ``in = applied + applied_with_warning + duplicate + rejected`` holds per
worker and summed over workers. A message is counted where its outcome is decided: at the
deduplication stage, or at the first stage when it has no messageId to deduplicate by.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from streams.outcomes import REJECTIONS, Emit


class Counters:
    """In-process counters of one worker, read by the /counters page."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.warnings: Counter[str] = Counter()

    def count_input(self, emits: list[Emit]) -> None:
        """The outcome of one input message, from what was released for it (nothing: duplicate)."""
        refusals = [e.value for e in emits if e.output == REJECTIONS]
        whole = [r for r in refusals if r["wholeMessage"]]
        self.outcomes["in"] += 1
        if not emits:
            self.outcomes["duplicate"] += 1
        elif whole:
            self.outcomes["rejected"] += 1
            self.rejected[whole[-1]["reason"]] += 1
        elif refusals:
            self.outcomes["applied_with_warning"] += 1
        else:
            self.outcomes["applied"] += 1
        self.warnings.update(r["reason"] for r in refusals if not r["wholeMessage"])

    def count_later(self, emits: list[Emit]) -> None:
        """Parts refused after the first stage (type mismatches, refused merges)."""
        self.warnings.update(
            e.value["reason"]
            for e in emits
            if e.output == REJECTIONS and not e.value["wholeMessage"]
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "in": self.outcomes["in"],
            "applied": self.outcomes["applied"],
            "applied_with_warning": self.outcomes["applied_with_warning"],
            "duplicate": self.outcomes["duplicate"],
            "rejected": self.outcomes["rejected"],
            "rejected_by_reason": dict(self.rejected),
            "warnings_by_reason": dict(self.warnings),
        }
