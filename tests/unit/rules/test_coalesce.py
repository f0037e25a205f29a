"""Compacted outputs carry each key's latest record per batch; rejections all go out."""

from hypothesis import given
from hypothesis import strategies as st

from streams.rules.outcomes import BY_PROFILE, MERGES, PROFILES, REJECTIONS, Emit, coalesce

emits = st.lists(
    st.builds(
        Emit,
        st.sampled_from([PROFILES, MERGES, REJECTIONS, BY_PROFILE]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 9) | st.none(),
    ),
    max_size=30,
)


def _latest(records):
    latest = {}
    for e in records:
        latest[e.output, e.key] = e.value
    return latest


@given(emits)
def test_a_compacted_topic_reads_the_same_after_coalescing(records):
    kept = coalesce(records)
    compacted = [e for e in records if e.output in (PROFILES, MERGES)]
    assert _latest([e for e in kept if e.output in (PROFILES, MERGES)]) == _latest(compacted)
    assert len({(e.output, e.key) for e in kept if e.output in (PROFILES, MERGES)}) == len(
        [e for e in kept if e.output in (PROFILES, MERGES)]
    )


@given(emits)
def test_rejections_and_internal_records_are_never_coalesced(records):
    others = [e for e in records if e.output not in (PROFILES, MERGES)]
    assert [e for e in coalesce(records) if e.output not in (PROFILES, MERGES)] == others


def test_a_tombstone_after_a_profile_wins():
    records = [Emit(PROFILES, "p", {"v": 1}), Emit(PROFILES, "p", None)]
    assert coalesce(records) == [Emit(PROFILES, "p", None)]
