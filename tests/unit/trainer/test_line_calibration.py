from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from detector.line import LineCalibration
from detector.line.calibration import default_window_sigma
from simulator import SimulationConfig, simulate
from tests.unit.detector.line.simline import quiet_line, topology_of
from trainer.line_calibration import _limit_for_budget, calibrate_line


@pytest.mark.slow
def test_calibration_learns_every_segment_and_says_how_the_limit_was_chosen() -> None:
    result = simulate(SimulationConfig(stations=4, days=6, seed=1004))
    topology = topology_of(result)
    frame = result.frame
    started = time.perf_counter()
    calibration = calibrate_line(frame, topology, budget_per_segment_month=1.0, exclude=frame["label"] == 1)
    assert time.perf_counter() - started < 30
    assert set(calibration.segments) == {s.segment_id for s in topology.segments}
    for segment_id, segment in calibration.segments.items():
        notes = calibration.record["segments"][segment_id]
        assert segment.limit >= 4.0
        if notes["limit_rule"].startswith("too few peaks"):
            assert segment.limit >= notes["largest_peak"] * 1.1 - 1e-3
        else:  # the fitted tail at the budget sets the limit, not the single largest peak
            assert segment.limit >= notes["tail_limit"] - 1e-3
            assert notes["peaks_above_limit"] <= notes["peaks"]
        assert all(s > 0 for s in segment.window_sigma_m3)
        assert abs(segment.bias_m3h) < 10.0
    again = LineCalibration.from_dict(calibration.to_dict())
    assert again == calibration


@pytest.mark.slow
def test_a_tighter_budget_never_lowers_a_limit() -> None:
    result = simulate(SimulationConfig(stations=3, days=5, seed=1005))
    topology = topology_of(result)
    frame: pd.DataFrame = result.frame
    loose = calibrate_line(frame, topology, budget_per_segment_month=4.0)
    tight = calibrate_line(frame, topology, budget_per_segment_month=0.25)
    for segment_id in loose.segments:
        assert tight.segments[segment_id].limit >= loose.segments[segment_id].limit


def test_one_odd_peak_does_not_set_the_limit() -> None:
    # Two months of ordinary excursions plus one event far above them: the budget's tail decides.
    rng = np.random.default_rng(3)
    minutes_per_peak = 180
    peaks = 2.0 + rng.exponential(0.5, size=480)
    peaks[100] = 12.0  # a meter drift the labels missed
    statistic = np.zeros(len(peaks) * minutes_per_peak)
    statistic[::minutes_per_peak] = peaks
    normal = np.ones(len(statistic), dtype=bool)
    limit, notes = _limit_for_budget(statistic, normal, 1.0)
    assert notes["largest_peak"] == 12.0
    assert notes["limit_rule"] in ("tail", "minimum")
    assert 4.0 <= limit < 8.0
    tighter, _ = _limit_for_budget(statistic, normal, 0.25)
    assert tighter > limit


def test_the_balance_windows_are_a_choice_and_each_gets_its_own_spread() -> None:
    result = quiet_line(days=1.0, noise=1.0, seed=11)
    topology = topology_of(result)
    longer = (5, 10, 20, 40, 80, 160, 320)
    calibration = calibrate_line(result.frame, topology, windows=longer)
    for segment in calibration.segments.values():
        assert segment.windows == longer
        assert len(segment.window_sigma_m3) == len(longer) and min(segment.window_sigma_m3) > 0
        # Learned, not the untrained defaults.
        assert segment.window_sigma_m3 != default_window_sigma(longer)
    assert LineCalibration.from_dict(calibration.to_dict()) == calibration
    for bad in ((), (10, 5), (0, 5), (5, 5, 10)):
        with pytest.raises(ValueError, match="windows"):
            calibrate_line(result.frame, topology, windows=bad)
