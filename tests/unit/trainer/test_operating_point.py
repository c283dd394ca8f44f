from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from detector.errors import ConfigError
from tests.unit.trainer.conftest import SENSORS
from trainer.operating_point import (
    FALSE_ALARM_BUDGET,
    NormalWindows,
    alarm_runs,
    budget_threshold,
    check_operating_point,
    exposure_months,
)

STEP = timedelta(minutes=5)


def windows(scores: np.ndarray, stations: int = 1) -> NormalWindows:
    per = len(scores) // stations
    ids = np.repeat([f"EST-{i + 1:02d}" for i in range(stations)], per)
    ends = np.tile(np.datetime64("2025-01-01T00:30") + np.arange(per) * np.timedelta64(STEP), stations)
    return NormalWindows(np.asarray(scores, dtype=np.float64), ids.astype(str), ends)


def test_alarm_runs_count_consecutive_windows_once_per_station() -> None:
    scores = np.array([0, 5, 5, 0, 5, 0, 5, 5], dtype=np.float64)
    assert alarm_runs(windows(scores), STEP, 1.0) == 3
    # Two stations: the last window of one and the first of the next are not one run.
    assert alarm_runs(windows(np.array([0, 0, 0, 5, 5, 0, 0, 0.0]), stations=2), STEP, 1.0) == 2
    assert exposure_months(windows(np.zeros(8640)), STEP) == pytest.approx(1.0)


def test_budget_threshold_keeps_the_budget_on_months_of_normal_windows() -> None:
    rng = np.random.default_rng(3)
    normal = windows(rng.gamma(2.0, 1.0, 6 * 8640), stations=2)  # 3 months per station
    threshold, notes = budget_threshold(normal, STEP, budget=1.0)
    assert notes["station_months"] == pytest.approx(6.0)
    assert alarm_runs(normal, STEP, threshold) <= 6
    # A looser budget gives a lower threshold, a stricter one a higher threshold.
    assert budget_threshold(normal, STEP, budget=10.0)[0] < threshold < budget_threshold(normal, STEP, 0.1)[0]


def test_per_station_thresholds_follow_each_stations_scores() -> None:
    from trainer.operating_point import per_station_budget_thresholds

    rng = np.random.default_rng(5)
    scores = np.r_[rng.gamma(2.0, 1.0, 8640), 3 * rng.gamma(2.0, 1.0, 8640)]
    own = per_station_budget_thresholds(windows(scores, stations=2), STEP)
    assert own["EST-02"] / own["EST-01"] == pytest.approx(3.0, rel=0.35)


def test_short_validation_extends_beyond_the_largest_normal_score() -> None:
    rng = np.random.default_rng(4)
    normal = windows(rng.gamma(2.0, 1.0, 300))  # about a day: far less than a month
    threshold, notes = budget_threshold(normal, STEP, budget=1.0)
    assert threshold > normal.scores.max()
    assert notes["rule"] == "tail"


def test_check_flags_a_drifted_test_period() -> None:
    drifted = windows(np.r_[np.zeros(50), np.full(50, 9.0)])
    check = check_operating_point(drifted, STEP, threshold=1.0, max_share=0.05)
    assert check.share == pytest.approx(0.5) and not check.acceptable
    assert "OPERATING POINT REJECTED" in check.message()
    assert check_operating_point(windows(np.zeros(100)), STEP, 1.0, 0.05).acceptable
    # Per station: the drifted one is named.
    two = check_operating_point(windows(np.r_[np.zeros(50), np.full(50, 9.0)], stations=2), STEP, 1.0, 0.05)
    assert two.per_station["EST-02"] == {"normal_windows": 50, "alarming_windows": 50, "alarms": 1}
    assert two.per_station["EST-01"]["alarming_windows"] == 0
    assert "most at station 'EST-02': 50 of 50" in two.message()


def test_bad_budget_options_are_refused(tmp_path: Path) -> None:
    from trainer.pipeline import TrainOptions

    with pytest.raises(ConfigError, match="--alarm-budget"):
        TrainOptions(data=tmp_path, alarm_budget=0)
    with pytest.raises(ConfigError, match="--max-normal-alarm-share"):
        TrainOptions(data=tmp_path, max_normal_alarm_share=1.5)
    with pytest.raises(ConfigError, match="--calibration"):
        TrainOptions(data=tmp_path, calibration_method="nonsense")


def drifting_csv(path: Path, rows: int = 900, drift_from: int = 720) -> Path:
    """One station, normal throughout, but flow and pressure step by 6 sd in the last fifth."""
    rng = np.random.default_rng(11)
    base, scale = np.array([500.0, 70.0, 1800.0, 15.0, 400.0]), np.array([20.0, 5.0, 50.0, 2.0, 15.0])
    values = base + scale * rng.standard_normal((rows, len(SENSORS)))
    values[drift_from:, :2] += 6 * scale[:2]
    ts = np.datetime64("2025-01-01T00:00") + np.arange(rows) * np.timedelta64(1, "m")
    lines = ["timestamp," + ",".join(SENSORS) + ",label"]
    lines += [f"{t}Z," + ",".join(f"{v:.3f}" for v in row) + ",0" for t, row in zip(ts, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_cli_refuses_a_drifted_operating_point_unless_accepted(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from centinela.cli import app

    data = drifting_csv(tmp_path / "drift.csv")
    args = ["train", "--data", str(data), "--window", "10", "--step", "5", "--encoder-units", "8,4"]
    args += ["--decoder-units", "4,8", "--epochs", "2", "--no-plots"]
    refused = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 3, refused.output
    assert "OPERATING POINT REJECTED" in refused.output
    manifest = json.loads((tmp_path / "a" / "bundle" / "manifest.json").read_text())
    assert manifest["training"]["operating_point"]["accepted"] is False
    assert manifest["calibration"]["method"] == FALSE_ALARM_BUDGET
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["operating_point"]["share"] > 0.5
    assert report["original_pipeline"] is None  # not the original's data set
    assert "Operating point **REJECTED**" in (tmp_path / "a" / "MODEL_CARD.md").read_text()
    accepted = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--accept-operating-point"])
    assert accepted.exit_code == 0, accepted.output
    manifest = json.loads((tmp_path / "b" / "bundle" / "manifest.json").read_text())
    assert manifest["training"]["operating_point"]["accepted_by_flag"] is True


def test_the_bundle_serves_only_stations_that_need_more_than_the_shared_threshold() -> None:
    from trainer.operating_point import served_station_thresholds

    assert served_station_thresholds(2.0, {"A": 1.5, "B": 2.0, "C": 3.1}) == {"C": 3.1}
    assert served_station_thresholds(2.0, None) == {}


def test_the_model_card_has_every_line_in_both_languages() -> None:
    from trainer.report_templates import load_sections

    english, spanish = (
        load_sections("trainer", "model_card", "en"),
        load_sections("trainer", "model_card", "es"),
    )
    assert set(spanish) == set(english)
    assert all(spanish[key] != english[key] for key in english)
