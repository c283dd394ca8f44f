"""Live against the oracle: only the oracle's end-of-data flush is set apart, nothing else."""

from __future__ import annotations

from evaluation.suites.sim import compare_segment_alerts
from tests.unit.suites.test_sim_segments import at, tap_alert


def test_an_oracle_update_at_the_data_s_end_is_counted_apart_and_an_earlier_one_is_a_difference() -> None:
    live = [tap_alert("t1", 100)]
    oracle = [tap_alert("t1", 100), tap_alert("t1", 1000, status="update")]
    at_end = compare_segment_alerts(live, oracle, data_end=at(1001))
    assert at_end["same"] and at_end["only_offline_at_end"] == 1 and at_end["only_offline"] == 0
    earlier = compare_segment_alerts(live, oracle, data_end=at(2000))
    assert not earlier["same"] and earlier["only_offline"] == 1
    assert not compare_segment_alerts([*live, tap_alert("t2", 999)], oracle, data_end=at(1001))["same"]
