from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from detector.errors import DataError
from evaluation.suites import calibration
from evaluation.suites.calibration import ORACLE, StudyConfig, draw_replicate, study, training_rows
from evaluation.suites.calibration_report import render_markdown
from evaluation.suites.seed import SEED_DATA
from tests.unit.trainer.conftest import synthetic_csv
from trainer.calibration import STRATEGIES
from trainer.data import Dataset, load_csv

CONFIG = StudyConfig(replicates=25, seed=3)


@pytest.fixture
def dataset(tmp_path: Path) -> Dataset:
    return load_csv(synthetic_csv(tmp_path / "seed.csv", rows=2000, anomaly_every=47))


def _with_later_rows_changed(dataset: Dataset) -> Dataset:
    ((station_id, series),) = dataset.stations.items()
    first_val = int(len(series.ts) * CONFIG.train_ratio)
    values, labels = series.values.copy(), series.labels.copy()
    values[first_val:] *= 10.0
    labels[first_val:] = np.roll(labels[first_val:], 7)
    changed = dataclasses.replace(series, values=values, labels=labels)
    return dataclasses.replace(dataset, stations={station_id: changed})


def test_replicates_are_drawn_from_the_training_split_alone(dataset: Dataset) -> None:
    changed = _with_later_rows_changed(dataset)
    first, second = study(dataset, CONFIG), study(changed, CONFIG)
    assert first["per_replicate"] == second["per_replicate"]
    assert first["source"]["anomalous_rows"] == second["source"]["anomalous_rows"]
    # The real split does read the later rows: the change shows there and only there.
    assert first["real_split"] != second["real_split"]


def test_same_seed_same_numbers_other_seed_other_numbers(dataset: Dataset) -> None:
    assert study(dataset, CONFIG) == study(dataset, CONFIG)
    other = study(dataset, dataclasses.replace(CONFIG, seed=4))
    assert other["per_replicate"] != study(dataset, CONFIG)["per_replicate"]


def test_no_rule_beats_the_best_test_threshold(dataset: Dataset) -> None:
    report = study(dataset, CONFIG)
    assert report["replicates"] + report["skipped_replicates"] == CONFIG.replicates
    best = np.array(report["per_replicate"][ORACLE])
    for rule in STRATEGIES:
        assert (np.array(report["per_replicate"][rule]) <= best + 1e-9).all(), rule
    for row in report["test_f1"].values():
        assert 0.0 <= row["p10"] <= row["median"] <= row["p90"] <= 1.0
        assert 0.0 <= row["share_at_least_target"] <= 1.0


def test_a_replicate_mixes_training_rows_at_the_training_rate(dataset: Dataset) -> None:
    source = training_rows(dataset, CONFIG)
    values, labels = draw_replicate(source, np.random.default_rng(0))
    assert len(values) == len(labels) == source.rows == 2000
    normal = {row.tobytes() for row in source.normal}
    anomalous = {row.tobytes() for row in source.anomalous}
    assert all(row.tobytes() in anomalous for row in values[labels])
    assert all(row.tobytes() in normal for row in values[~labels])
    rates = [draw_replicate(source, np.random.default_rng(s))[1].mean() for s in range(50)]
    assert abs(float(np.mean(rates)) - source.anomaly_rate) < 0.3 * source.anomaly_rate


def test_a_training_split_without_labels_is_refused_with_the_station(tmp_path: Path) -> None:
    quiet = load_csv(synthetic_csv(tmp_path / "quiet.csv", rows=300, anomaly_every=10_000))
    with pytest.raises(DataError, match=r"EST-01.*labelled"):
        training_rows(quiet, CONFIG)


@pytest.mark.slow
@pytest.mark.skipif(not SEED_DATA.exists(), reason="seed data set not present")
def test_quick_run_on_the_seed_data_writes_report_and_plots(tmp_path: Path) -> None:
    calibration.run(out=tmp_path, quick=True, lang="en")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["suite"] == "calibration" and report["quick"]
    assert report["source"] == {
        "data": str(SEED_DATA.resolve()),
        "split": "train",
        "normal_rows": 2970,
        "anomalous_rows": 30,
        "anomaly_rate": 0.01,
        "rows_per_replicate": 5000,
    }
    # The ceiling detector on the real split, thresholds from validation: the figures docs/trainer.md cites.
    assert report["real_split"][ORACLE] == pytest.approx(0.870, abs=0.001)
    assert report["real_split"]["best_f1_every_threshold"] == pytest.approx(0.816, abs=0.001)
    # The trainer itself on the first replicate, paired with the ceiling detector on the same data.
    (row,) = report["autoencoder"]["per_replicate"]
    assert row["replicate"] == 0
    assert row["ceiling_best_possible"] == report["per_replicate"][ORACLE][0]
    assert 0.0 <= row["autoencoder_f1"] <= row["autoencoder_best_possible"] <= 1.0
    assert "real split" in (tmp_path / "report.md").read_text()
    spanish = render_markdown(report, "es", [])
    assert "división real" in spanish and "El autoencoder en las mismas réplicas" in spanish
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == [
        "oracle_vs_calibrated.png",
        "test_f1_distribution.png",
    ]
