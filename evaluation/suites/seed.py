"""``centinela evaluate seed``: the original data set, split and windows; our detectors beside the original's.

Every detector gets its threshold from the validation split only; numbers are on the test split.
The original pipeline's published configuration (mean over the window, best-F1 percentile) is
rebuilt from our autoencoder's reconstructions so the comparison isolates that choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detector.errors import ConfigError

SEED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "rebombeo_huachicoleo.csv"
ORIGINAL_CONFIGURATION = "original_configuration"


def run(out: Path, quick: bool = False, lang: str = "en", data: Path | None = None) -> dict[str, Any]:
    """Train on the seed data set, evaluate every detector, write report.json, report.md and plots/."""
    from detector.scoring import reconstruction_errors
    from devtools.progress import progress_board
    from trainer.calibration import BEST_F1_EVERY
    from trainer.model import FitConfig, ModelConfig
    from trainer.pipeline import UNSUPERVISED, TrainOptions, evaluate_detector, run_training
    from trainer.plots import write_plots
    from trainer.reports import build_report, write_reports

    source = (data or SEED_DATA).resolve()
    if not source.exists():
        raise ConfigError(f"seed data set not found at {source}")
    model = ModelConfig(encoder_units=(16, 8), decoder_units=(8, 16)) if quick else ModelConfig()
    fit = FitConfig(epochs=3, patience=1) if quick else FitConfig()
    # The seed suite compares F1 with the original's published figures, so the threshold is the
    # F1-based rule (validation labels), not the trainer's default false-alarm budget.
    options = TrainOptions(
        data=source,
        window=30,
        step=5,
        model=model,
        fit=fit,
        use_labels=True,
        advanced_models=True,
        calibration_method=BEST_F1_EVERY,
    )
    with progress_board() as board:
        epochs = board.add("seed: epochs", fit.epochs)
        result = run_training(
            options,
            on_epoch=lambda epoch, total, _logs: epochs.update(completed=epoch, total=total),
            on_stage=board.note,
        )
        epochs.update(completed=result.trained.epochs_run, total=result.trained.epochs_run)
    prepared = result.prepared

    def mean_scores(split: str) -> Any:
        scores, _ = reconstruction_errors(prepared[split].x, result.reconstructions[split], "mean")
        return scores

    result.models[ORIGINAL_CONFIGURATION] = evaluate_detector(
        ORIGINAL_CONFIGURATION,
        UNSUPERVISED,
        mean_scores("validation"),
        mean_scores("test"),
        prepared,
        aggregation="mean",
    )
    report = build_report(result)
    report["suite"] = "seed"
    report["quick"] = quick
    out.mkdir(parents=True, exist_ok=True)
    plots = [str(p.relative_to(out)) for p in write_plots(result, out / "plots", lang)]
    write_reports(report, out, lang=lang, plots=plots)
    _print_summary(report, out)
    return report


def _print_summary(report: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="seed suite: test split, thresholds from validation")
    table.add_column("model", no_wrap=True)
    for column in ("mode", "precision", "recall", "F1", "ROC-AUC", "AP"):
        table.add_column(column)
    for name, model in report["models"].items():
        cells = [model[k] for k in ("precision", "recall", "f1", "roc_auc", "average_precision")]
        table.add_row(name, model["mode"], *("—" if v is None else f"{v:.3f}" for v in cells))
    console = Console()
    console.print(table)
    console.print(f"written {out / 'report.json'}, {out / 'report.md'}, {out / 'plots'}")
