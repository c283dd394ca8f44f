from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from detector.errors import ConfigError
from evaluation.suites.skab_data import SENSORS, TRAIN_ROWS, SkabFile
from evaluation.suites.skab_detector import (
    DetectorConfig,
    NormalModel,
    calibrate_factor,
    causal_mean,
    detect_file,
    hold_alarms,
)


def synthetic_file(rows: int = 900, shift_at: int = 600, seed: int = 7) -> SkabFile:
    """Noise around fixed levels, with a 3σ step on one sensor from ``shift_at`` on."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.0, size=(rows, len(SENSORS))) + np.arange(len(SENSORS))
    values[shift_at:, SENSORS.index("Volume Flow RateRMS")] -= 3.0
    anomaly = np.zeros(rows, dtype=np.int8)
    anomaly[shift_at:] = 1
    stamps = np.arange(rows).astype("datetime64[s]")
    return SkabFile("synthetic.csv", stamps, values, anomaly, np.zeros(rows, dtype=np.int8))


def test_causal_mean_uses_only_the_current_and_earlier_rows() -> None:
    values = np.array([[1.0], [3.0], [5.0], [7.0]])
    assert causal_mean(values, 2)[:, 0].tolist() == [1.0, 2.0, 4.0, 6.0]


def test_hold_keeps_an_alarm_on_for_the_given_samples_and_never_earlier() -> None:
    flags = np.array([False, False, True, False, False, False, False])
    assert hold_alarms(flags, 2).tolist() == [False, False, True, True, True, False, False]
    assert hold_alarms(flags, 0).tolist() == flags.tolist()


def test_scores_of_past_rows_do_not_depend_on_future_rows() -> None:
    file = synthetic_file()
    model = NormalModel.fit(file.values[:TRAIN_ROWS], smoothing=10, ridge=1e-2)
    altered = file.values.copy()
    altered[700:] += 100.0
    assert np.array_equal(model.score(file.values)[:700], model.score(altered)[:700])


def test_detector_finds_a_step_and_stays_quiet_before_it() -> None:
    file = synthetic_file()
    detection = detect_file(file, DetectorConfig(), factor=2.0)
    test_alarms = detection.alarms[TRAIN_ROWS:]
    before, after = test_alarms[: 600 - TRAIN_ROWS], test_alarms[600 - TRAIN_ROWS + 20 :]
    assert before.mean() < 0.05
    assert after.mean() > 0.95


def test_calibration_picks_the_smallest_factor_within_the_false_alarm_target() -> None:
    files = [synthetic_file(seed=seed) for seed in range(4)]
    config = DetectorConfig()
    calibration = calibrate_factor(files, config)
    within = [
        f for f, far in calibration.forward_far_pct_by_factor.items() if far <= config.target_forward_far_pct
    ]
    assert calibration.factor == min(within)
    assert calibrate_factor(files, replace(config, factor=5.0)).factor == 5.0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError):
        DetectorConfig(sensors=("Nonexistent",))
    with pytest.raises(ConfigError):
        DetectorConfig(smoothing=0)
