from streams.rules.outcomes import MERGES, PROFILES, REJECTIONS, Emit
from streams.runtime.accounting import Counters


def refusal(reason, whole):
    return Emit(REJECTIONS, "m", {"reason": reason, "wholeMessage": whole})


def test_outcomes_add_up_and_show_in_both_forms():
    counters = Counters()
    counters.count_outcome("applied")
    counters.count_outcome("applied_with_warning")
    counters.count_refusals([refusal("blocklisted_identifier", False), Emit(PROFILES, "p", None)])
    counters.count_outcome("rejected")
    counters.count_refusals([refusal("undecodable", True)])
    counters.count_outcome("duplicate")
    counters.count_refusals([refusal("type_mismatch", False), Emit(MERGES, "a", {})])
    for sent in (Emit(PROFILES, "p", None), Emit(MERGES, "a", {})):
        counters.count_published(sent)
    snap = counters.snapshot()
    assert {
        k: snap[k] for k in ("in", "applied", "applied_with_warning", "duplicate", "rejected")
    } == {
        "in": 4,
        "applied": 1,
        "applied_with_warning": 1,
        "duplicate": 1,
        "rejected": 1,
    }
    assert snap["rejected_by_reason"] == {"undecodable": 1}
    assert snap["warnings_by_reason"] == {"blocklisted_identifier": 1, "type_mismatch": 1}
    text = counters.prometheus().decode()
    assert 'identity_stream_events_total{outcome="duplicate"} 1.0' in text
    assert 'identity_stream_outputs_total{output="tombstone"} 1.0' in text
    assert 'identity_stream_outputs_total{output="merge"} 1.0' in text
    assert (
        'identity_stream_refusals_total{reason="blocklisted_identifier",scope="part"} 1.0' in text
    )


def test_input_lag_histogram_counts_each_observation_in_its_bucket_and_above():
    counters = Counters()
    for seconds in (-0.5, 0.01, 0.011, 7.0, 1_000.0):  # a clock step back counts as no lag
        counters.observe_input_lag(seconds)
    text = counters.prometheus().decode()
    for bound, count in (("0.01", 2), ("0.05", 3), ("5.0", 3), ("10.0", 4), ("300.0", 4)):
        assert f'identity_stream_input_lag_seconds_bucket{{le="{bound}"}} {count}.0' in text
    assert 'identity_stream_input_lag_seconds_bucket{le="+Inf"} 5.0' in text
    assert "identity_stream_input_lag_seconds_count 5.0" in text
    assert "identity_stream_input_lag_seconds_sum 1007.021" in text
