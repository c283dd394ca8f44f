from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trainer.calibration import BEST_F1_EVERY
from trainer.model import FitConfig, ModelConfig
from trainer.operating_point import FALSE_ALARM_BUDGET
from trainer.pipeline import TrainOptions, run_training
from trainer.training import early_stopping_holdout

TINY_MODEL = ModelConfig(encoder_units=(8, 4), decoder_units=(4, 8), dropout=0.1)
TINY_FIT = FitConfig(epochs=2, batch_size=16, patience=1, seed=7)


def tiny_options(data: Path, **changes: object) -> TrainOptions:
    fields: dict[str, object] = {"data": data, "window": 10, "step": 5, "model": TINY_MODEL, "fit": TINY_FIT}
    fields.update(changes)
    return TrainOptions(**fields)  # type: ignore[arg-type]


@pytest.mark.slow
def test_same_seed_same_numbers() -> None:
    from trainer.training import train_autoencoder

    x = np.random.default_rng(0).standard_normal((48, 6, 2)).astype(np.float32)
    model = ModelConfig(encoder_units=(4,), decoder_units=(4,), dropout=0.1, input_noise=0.5)

    def fit(seed: int) -> tuple[dict[str, list[float]], np.ndarray]:
        trained = train_autoencoder(x, model, FitConfig(epochs=2, batch_size=16, patience=1, seed=seed))
        return trained.history, trained.reconstruct(x)

    history, rebuilt = fit(7)
    history_again, rebuilt_again = fit(7)
    assert history == history_again
    np.testing.assert_array_equal(rebuilt, rebuilt_again)
    _, rebuilt_other_seed = fit(8)
    assert not np.array_equal(rebuilt, rebuilt_other_seed)


@pytest.mark.slow
def test_models_modes_and_metrics(seed_like_csv: Path) -> None:
    result = run_training(tiny_options(seed_like_csv, use_labels=True, advanced_models=True))
    assert set(result.models) == {
        "autoencoder",
        "autoencoder_with_labels",
        "isolation_forest",
        "local_outlier_factor",
    }
    assert result.models["autoencoder_with_labels"].mode == "labels"
    assert result.autoencoder.mode == "unsupervised"
    assert result.aggregation in result.aggregation_selection
    for model in result.models.values():
        summary = model.summary()
        for key in ("precision", "recall", "f1", "roc_auc", "average_precision"):
            assert 0.0 <= summary[key] <= 1.0
        assert summary["events"]["events"] == len(result.prepared["test"].events)
    # The synthetic anomalies are large: even a two-epoch model catches them.
    assert result.autoencoder.test["roc_auc"] > 0.9
    # The autoencoder's threshold also counts false alarms on the early-stopping holdout; the
    # baselines and the label head fitted those windows, so they calibrate on validation alone.
    normal_train = int((result.prepared["train"].labels == 0).sum())
    held_out = early_stopping_holdout(normal_train, TINY_FIT.validation_split)
    # The default threshold meets the false-alarm budget; the F1 rules are compared beside it.
    assert result.autoencoder.calibration.method == FALSE_ALARM_BUDGET
    assert {c.strategy for c in result.autoencoder.calibration.strategies} >= {
        FALSE_ALARM_BUDGET,
        BEST_F1_EVERY,
    }
    assert result.operating_point is not None and result.operating_point.checked
    assert result.autoencoder.calibration.extra_normal_windows == held_out.stop - held_out.start > 0
    assert result.models["isolation_forest"].calibration.extra_normal_windows == 0


def test_early_stopping_holdout_is_the_last_share_keras_keeps() -> None:
    assert early_stopping_holdout(100, 0.1) == slice(90, 100)
    assert early_stopping_holdout(443, 0.1) == slice(398, 443)  # floor, as keras' train_validation_split
    assert early_stopping_holdout(50, 0.0) == slice(50, 50)


@pytest.mark.slow
def test_cli_writes_report_plots_bundle_and_card(seed_like_csv: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from centinela.cli import app
    from detector.bundle import load_bundle

    out = tmp_path / "run"
    args = ["train", "--data", str(seed_like_csv), "--out", str(out), "--window", "10", "--step", "5"]
    args += ["--encoder-units", "8,4", "--decoder-units", "4,8", "--epochs", "2", "--advanced-models"]
    args += ["--lang", "es", "--walk-forward", "2"]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    report = json.loads((out / "report.json").read_text())
    for name in ("autoencoder", "isolation_forest", "local_outlier_factor"):
        assert {"precision", "recall", "f1", "roc_auc", "average_precision"} <= set(report["models"][name])
    assert report["split"]["test"]["windows"] > 0
    assert report["calibration"]["test"][0]["split"] == "test"
    assert len(report["walk_forward"]["folds"]) == 2
    assert "Métricas en prueba" in (out / "report.md").read_text()
    assert len(list((out / "plots").glob("*.png"))) == 8
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith("# Ficha del modelo")  # --lang es
    assert "10 muestras (10 min), una nueva cada 5 min" in card
    bundle = load_bundle(out / "bundle")
    assert bundle.threshold == pytest.approx(report["models"]["autoencoder"]["threshold"])
    assert "bundle written to" in outcome.output


@pytest.mark.slow
def test_sweep_runs_trials_in_spawned_processes_and_resumes(seed_like_csv: Path, tmp_path: Path) -> None:
    from trainer.sweep import build_grid, run_sweep

    grid = build_grid({"window": [10], "step": [5], "encoder_units": [(4,)], "epochs": [1], "patience": [1]})
    results = tmp_path / "sweep.jsonl"
    first = run_sweep(tiny_options(seed_like_csv), grid, results, workers=1)
    assert first.ran == 1 and first.ranked[0]["config"]["window"] == 10
    again = run_sweep(tiny_options(seed_like_csv), grid, results, workers=1)
    assert again.ran == 0 and again.resumed == 1


@pytest.mark.slow
def test_use_labels_without_training_labels_is_refused(tmp_path: Path) -> None:
    from detector.errors import DataError
    from tests.unit.trainer.conftest import synthetic_csv

    path = synthetic_csv(tmp_path / "none.csv", rows=200, anomaly_every=10_000)
    with pytest.raises(DataError, match="--use-labels needs labelled anomalies in the training split"):
        run_training(tiny_options(path, use_labels=True, fit=FitConfig(epochs=1, batch_size=16, seed=1)))
