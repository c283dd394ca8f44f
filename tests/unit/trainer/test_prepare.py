from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.errors import ConfigError, DataError
from tests.unit.trainer.conftest import synthetic_csv
from trainer.data import load_csv
from trainer.prepare import prepare
from trainer.split import chronological_bounds, split_dataset, walk_forward_bounds


def test_split_is_chronological_and_matches_the_original_row_split(seed_like_csv: Path) -> None:
    data = load_csv(seed_like_csv)
    bounds = chronological_bounds(data, 0.6, 0.2)
    parts = {
        name: split_dataset(data, bounds, name).stations["EST-01"] for name in ("train", "validation", "test")
    }
    assert [len(p) for p in parts.values()] == [360, 120, 120]
    assert parts["train"].ts.max() < parts["validation"].ts.min()
    assert parts["validation"].ts.max() < parts["test"].ts.min()


def test_windows_scaler_and_labels(seed_like_csv: Path) -> None:
    data = load_csv(seed_like_csv)
    prepared = prepare(data, window=30, step=5)
    train = prepared["train"]
    # 360 rows, windows of 30 with step 5 that fit: (360 - 30) / 5 + 1
    assert len(train) == 67
    assert train.x.shape == (67, 30, 5)
    assert (train.labels == train.step_labels.any(axis=1)).all()
    # The scaler saw normal training rows only: their scaled mean is 0.
    series = data.stations["EST-01"]
    normal_train = series.values[:360][series.labels[:360] == 0]
    scaled = prepared.scalers.for_station("EST-01").transform(normal_train)
    assert np.allclose(scaled.mean(axis=0), 0.0, atol=1e-5)
    assert prepared["test"].events and all(e.start == e.end for e in prepared["test"].events)


def test_per_station_scalers(tmp_path: Path) -> None:
    data = load_csv(synthetic_csv(tmp_path / "m.csv", rows=300, stations=("A1", "B2")))
    prepared = prepare(data, window=20, step=5)
    assert set(prepared.scalers.per_station) == {"A1", "B2"}
    assert set(prepared["test"].station_ids.tolist()) == {"A1", "B2"}


def test_too_few_rows_for_a_window_names_the_lines(seed_like_csv: Path) -> None:
    data = load_csv(seed_like_csv)
    with pytest.raises(DataError, match=r"lines \d+-\d+.*too few for one window of 200 samples"):
        prepare(data, window=200, step=5)


def test_split_without_normal_rows(tmp_path: Path) -> None:
    path = tmp_path / "all_bad.csv"
    rows = ["timestamp,flow,label"] + [f"2025-01-01 00:{i:02d}:00,{i},1" for i in range(50)]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"column 'label'.*no station has 2 normal complete rows.*lines 2-31"):
        prepare(load_csv(path), window=5, step=1)


def test_bad_ratios() -> None:
    from trainer.split import check_ratios

    with pytest.raises(ConfigError):
        check_ratios(0.8, 0.3)


def test_walk_forward_folds_never_look_ahead(seed_like_csv: Path) -> None:
    data = load_csv(seed_like_csv)
    folds = walk_forward_bounds(data, 3)
    assert len(folds) == 3
    for fold in folds:
        assert fold.validation_start < fold.test_start
        assert fold.end is None or fold.test_start < fold.end
    assert folds[0].validation_start < folds[1].validation_start < folds[2].validation_start


def test_validation_split_without_normal_windows_names_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad_validation.csv"
    rows = ["timestamp,flow,label"]
    for i in range(100):
        # Every third minute labelled in the validation span: no 5-minute window is all normal.
        label = 1 if 60 <= i < 80 and i % 3 == 0 else 0
        rows.append(f"2025-01-01 {i // 60:02d}:{i % 60:02d}:00,{i % 7},{label}")
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"lines 62-81, column 'label': the validation split has no normal"):
        prepare(load_csv(path), window=5, step=1)
