"""The fault suite in small, inside ``make test``; ``make chaos`` runs it bigger (tests.chaos).

One merge-heavy stream with junk in it goes through every fault at once: the group grows to two
workers, two SIGKILLs and a broker restart land at random moments, the group shrinks back to one.
The end must be the clean run's: same profiles and merges, the same rejections (as a set), and
every message applied once or refused.
"""

from __future__ import annotations

import warnings

import pytest

from tests.chaos import Plan, run

pytestmark = pytest.mark.integration


def test_kills_a_broker_restart_and_a_changing_group_give_the_result_of_a_clean_run(deployment):
    plan = Plan("all", people=200, seed=1, kills=2, grow_shrink=True, broker_restart=True)
    outcome = run(deployment, plan)
    for note in outcome.notes:
        warnings.warn(note, stacklevel=1)
    assert outcome.kills == 2
    assert not outcome.differences, "\n".join(outcome.differences)
