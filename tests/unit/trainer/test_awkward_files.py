"""Files a real plant produces that the trainer used to refuse: each read, trained and reported."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from detector.errors import ConfigError, DataError
from trainer.data import UNKNOWN_LABEL, load_csv
from trainer.prepare import fit_scalers, prepare, samples_of, unusable_sensors
from trainer.split import chronological_bounds, date_bounds

SENSORS = ("flow", "pressure", "power", "stuck", "constant")
START = np.datetime64("2025-03-01T00:00")


def awkward_csv(path: Path, rows: int = 720, sampling_s: int = 60, seed: int = 5) -> Path:
    """Two stations with normal levels 10x apart; class-coded labels (0 normal, 3 and 7 faults) with
    empty (unknown) stretches; empty sensor cells; a frozen sensor and a constant one.

    Events (code 3 or 7) every 97 rows from row 250; rows 100-129 of each station have no label;
    rows 60-64 of EST-01 have no flow reading; station EST-02's rows 0-359 are all unknown.
    """
    rng = np.random.default_rng(seed)
    lines = ["station_id,timestamp," + ",".join(SENSORS) + ",event_class"]
    for number, level in ((1, 1.0), (2, 10.0)):
        station = f"EST-{number:02d}"
        values = level * (
            np.array([500.0, 70.0, 400.0]) + np.array([20.0, 5.0, 15.0]) * rng.standard_normal((rows, 3))
        )
        codes = np.zeros(rows, dtype=object)
        for k, row in enumerate(range(250, rows, 97)):
            codes[row : row + 3] = 3 if k % 2 else 7
            values[row : row + 3] += level * np.array([-100.0, -20.0, 60.0])
        codes[100:130] = ""
        if number == 2:
            codes[:360] = ""
        stuck = np.round(rng.standard_normal(rows).cumsum() / 50) * 0 + 12.5
        stuck[::60] += 0.1  # a sensor that updates once in 60 readings
        for i in range(rows):
            ts = START + np.timedelta64(i * sampling_s, "s")
            cells = [f"{v:.3f}" for v in values[i]]
            if number == 1 and 60 <= i < 65:
                cells[0] = ""
            lines.append(f"{station},{ts}Z," + ",".join([*cells, f"{stuck[i]:.2f}", "7"]) + f",{codes[i]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_empty_cells_unknown_labels_and_class_codes_are_read(tmp_path: Path) -> None:
    data = load_csv(awkward_csv(tmp_path / "a.csv"), label_column="event_class", anomaly_values=("3", "7"))
    one, two = data.stations["EST-01"], data.stations["EST-02"]
    assert np.isnan(one.values[60:65, 0]).all() and np.isfinite(one.values[65:, 0]).all()
    assert data.n_missing_cells == 5
    assert (one.labels[100:130] == UNKNOWN_LABEL).all() and (two.labels[:360] == UNKNOWN_LABEL).all()
    assert set(np.unique(one.labels[250:253])) == {1} and one.labels[0] == 0
    assert "event_class" not in data.sensors


def test_class_codes_without_a_mapping_say_which_flag_maps_them(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"column 'event_class'.*got '7'.*--anomaly-values"):
        load_csv(awkward_csv(tmp_path / "a.csv"), label_column="event_class")
    with pytest.raises(DataError, match=r"missing column 'status' \(asked for by --label-column\)"):
        load_csv(awkward_csv(tmp_path / "a.csv"), label_column="status")


def test_frozen_and_constant_sensors_are_found_with_a_reason(tmp_path: Path) -> None:
    data = load_csv(awkward_csv(tmp_path / "a.csv"), label_column="event_class", anomaly_values=("3", "7"))
    found = unusable_sensors(data, chronological_bounds(data))
    assert set(found) == {"stuck", "constant"}
    assert found["constant"].startswith("constant (7)") and found["stuck"].startswith("frozen: 9")


def test_a_station_without_normal_training_rows_uses_the_pooled_scaler(tmp_path: Path) -> None:
    data = load_csv(awkward_csv(tmp_path / "a.csv"), label_column="event_class", anomaly_values=("3", "7"))
    data = data.with_sensors(("flow", "pressure", "power"))
    notes: list[str] = []
    bounds = date_bounds(data, "2025-03-01T06:00", "2025-03-01T09:00")  # EST-02 unknown until 06:00
    scalers = fit_scalers(data, bounds, notes)
    assert set(scalers.per_station) == {"EST-01"}
    assert "EST-02" in notes[0] and "pooled scaler" in notes[0]
    # With a later cut each station has its own level, 10x apart.
    own = fit_scalers(data, date_bounds(data, "2025-03-01T08:00", "2025-03-01T10:00"))
    ratio = own.per_station["EST-02"].mean / own.per_station["EST-01"].mean
    np.testing.assert_allclose(ratio, 10.0, rtol=0.05)


def test_durations_count_samples_at_the_inferred_sampling(tmp_path: Path) -> None:
    assert samples_of("30min", timedelta(minutes=1), "--window") == 30
    assert samples_of("5 min", timedelta(seconds=10), "--step") == 30
    assert samples_of(12, timedelta(seconds=10), "--window") == 12  # plain integers stay samples
    assert samples_of("12", timedelta(seconds=10), "--window") == 12
    with pytest.raises(ConfigError, match=r"--window 90s is not a whole number of samples.*0:01:00"):
        samples_of("90s", timedelta(minutes=1), "--window")
    with pytest.raises(ConfigError, match="--step must be a number of samples or a duration"):
        samples_of("five minutes", timedelta(minutes=1), "--step")
    data = load_csv(
        awkward_csv(tmp_path / "a.csv", sampling_s=10), label_column="event_class", anomaly_values=("3",)
    )
    prepared = prepare(data, window="5min", step="1min")
    assert prepared.spec.samples_per_window == 30 and prepared.spec.step == timedelta(minutes=1)
    assert not any(note.startswith("sampling period") for note in prepared.notes)  # regular rows


def test_irregular_sampling_is_reported(tmp_path: Path) -> None:
    path = awkward_csv(tmp_path / "a.csv")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:200] + lines[260:]) + "\n")  # an hour of EST-01 missing
    data = load_csv(path, label_column="event_class", anomaly_values=("3", "7"))
    prepared = prepare(data, window="20min", step="5min")
    assert any(n.startswith("sampling period 0:01:00 inferred") for n in prepared.notes)
    assert prepared["train"].skipped > 0


def test_date_splits_and_their_errors(tmp_path: Path) -> None:
    data = load_csv(awkward_csv(tmp_path / "a.csv"), label_column="event_class", anomaly_values=("3", "7"))
    bounds = date_bounds(data, "2025-03-01T08:00:00+00:00", "2025-03-01 10:00")
    assert bounds.validation_start == np.datetime64("2025-03-01T08:00")
    assert bounds.test_start == np.datetime64("2025-03-01T10:00")
    with pytest.raises(ConfigError, match=r"--train-until .* must come before --validate-until"):
        date_bounds(data, "2025-03-01T10:00", "2025-03-01T08:00")
    with pytest.raises(DataError, match="no rows in the test split"):
        date_bounds(data, "2025-03-01T08:00", "2025-04-01")
    with pytest.raises(ConfigError, match="--train-until must be an ISO date"):
        date_bounds(data, "March", "2025-04-01")


@pytest.mark.slow
def test_the_awkward_file_trains_and_reports_each_workaround(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from centinela.cli import app
    from detector.bundle import load_bundle

    data = awkward_csv(tmp_path / "awkward.csv")
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(out), "--label-column", "event_class"]
    args += ["--anomaly-values", "3,7", "--window", "20min", "--step", "5min"]
    # The split falls inside the event that starts at 07:18 (row 438): it is marked as cut.
    args += ["--train-until", "2025-03-01T07:19", "--validate-until", "2025-03-01T09:40"]
    args += ["--encoder-units", "8,4", "--decoder-units", "4,8", "--epochs", "2", "--accept-operating-point"]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    report = json.loads((out / "report.json").read_text())
    quality = report["data_quality"]
    assert quality["empty_sensor_cells"] == 5 and quality["unknown_label_rows"] == 30 + 360
    assert set(quality["dropped_sensors"]) == {"stuck", "constant"}
    assert report["sensors"] == ["flow", "pressure", "power"]
    assert report["window"]["samples"] == 20 and report["window"]["given"]["window"] == "20min"
    assert report["split_bounds"]["validation_start"].startswith("2025-03-01T07:19")
    assert report["split"]["train"]["unknown_windows"] > 0
    # Unknown windows take part in no metric: the confusion matrix counts known test windows only.
    test = report["split"]["test"]
    assert (
        sum(map(sum, report["models"]["autoencoder"]["confusion_matrix"]))
        == test["windows"] - test["unknown_windows"]
    )
    assert report["models"]["autoencoder"]["events"]["false_alarms_per_station_month"] is not None
    assert (
        report["events"]["autoencoder"]["cut_by_split"] >= 1 or report["split"]["validation"]["events"] >= 1
    )
    assert report["original_pipeline"] is None
    md = (out / "report.md").read_text()
    assert "sensor 'stuck' dropped: frozen" in md and "sensor 'constant' dropped: constant" in md
    assert (out / "plots" / "data_split.png").stat().st_size > 0
    assert load_bundle(out / "bundle").sensors == ("flow", "pressure", "power")


@pytest.mark.slow
@pytest.mark.parametrize("keep_unknown", [False, True])
def test_unknown_windows_are_trained_on_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_unknown: bool
) -> None:
    from trainer import pipeline
    from trainer.training import TrainedModel

    fitted: list[np.ndarray] = []

    def fake_train(x: np.ndarray, *args: object, **kwargs: object) -> TrainedModel:
        fitted.append(x)
        return TrainedModel(lambda batch, training=False: np.asarray(batch) * 0.9, {"loss": [1.0]}, 1, 1, 0.0)

    monkeypatch.setattr(pipeline, "train_autoencoder", fake_train)
    options = pipeline.TrainOptions(
        data=awkward_csv(tmp_path / "a.csv"),
        label_column="event_class",
        anomaly_values=("3", "7"),
        window="20min",
        step="5min",
        train_on_unlabelled=keep_unknown,
    )
    result = pipeline.run_training(options)
    train = result.prepared["train"]
    expected = (train.labels != 1) if keep_unknown else (train.labels == 0)
    assert len(fitted[0]) == int(expected.sum()) and (train.labels == UNKNOWN_LABEL).any()
    # Unknown windows never reach the metrics: the test confusion matrix counts known windows only.
    test = result.prepared["test"]
    assert sum(map(sum, result.autoencoder.test["confusion_matrix"])) == int(test.known.sum())
