"""``centinela evaluate calibration``: how far a threshold chosen on validation carries to test.

The seed data set's validation and test splits hold about ten one-minute anomalies each, so one
event more or less moves a window F1 by about 0.05. This suite measures that noise instead of
arguing about it: it draws many data sets of the seed data's size from the *training split only*
(its normal rows and its labelled rows, resampled with replacement, anomalies placed at the training
split's rate), runs the issue's ceiling detector on each (per-minute mean squared z-score, maximum
over the window), chooses the threshold on the replicate's validation split with every rule of
``trainer.calibration`` and reads F1 on the replicate's test split. Beside that: the same detector on
the real split, and the replicates whose best-possible test F1 is close to the real split's, which
show what a validation-chosen threshold gives on a test split like the real one.

Nothing here reads the real validation or test rows to build the replicates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.errors import DataError
from trainer.calibration import BEST_F1_EVERY, STRATEGIES, all_strategies, best_f1_every_threshold, counts_at
from trainer.data import Dataset, StationSeries
from trainer.pipeline import TrainOptions
from trainer.training import early_stopping_holdout

# The seed data's rules and sizes (the original's split and windows; the trainer's holdout share).
TARGET_F1 = 0.85
ORACLE = "best_possible"
# Replicates whose best-possible test F1 lies this close to the real split's count as "alike".
ALIKE_WITHIN = 0.02
AUTOENCODER_REPLICATES = 10
QUICK_AUTOENCODER_REPLICATES = 1


_TRAINER = TrainOptions(data=Path())


@dataclass(frozen=True)
class StudyConfig:
    """Sizes and rules of the study; windows, split and holdout default to the trainer's own."""

    replicates: int = 1000
    seed: int = 42
    # The trainer's defaults are plain sample counts (it also takes durations such as "30min").
    window: int = int(_TRAINER.window)
    step: int = int(_TRAINER.step)
    train_ratio: float = _TRAINER.train_ratio
    val_ratio: float = _TRAINER.val_ratio
    # The trainer adds the autoencoder's early-stopping holdout (the last normal training windows)
    # to validation's normal windows when counting false alarms; the study does the same.
    holdout_share: float = _TRAINER.fit.validation_split


@dataclass(frozen=True)
class TrainingRows:
    """The training split's rows in z-units (each station standardised by its normal training rows)."""

    normal: npt.NDArray[np.float64]
    anomalous: npt.NDArray[np.float64]
    rows: int

    @property
    def anomaly_rate(self) -> float:
        return len(self.anomalous) / (len(self.normal) + len(self.anomalous))


def _cut_points(rows: int, config: StudyConfig) -> tuple[int, int]:
    # The trainer's chronological cut of a regular one-station series: int(n * ratio) rows before.
    return int(rows * config.train_ratio), int(rows * (config.train_ratio + config.val_ratio))


def training_rows(dataset: Dataset, config: StudyConfig) -> TrainingRows:
    """The rows the replicates are drawn from: the training split of every station, nothing later."""
    normal, anomalous, rows = [], [], 0
    for station_id, series in dataset.stations.items():
        first_val, _ = _cut_points(len(series.ts), config)
        values, labels = series.values[:first_val], series.labels[:first_val].astype(bool)
        if labels.all() or not labels.any():
            raise DataError(
                f"{dataset.source}: station {station_id} needs normal and labelled rows in its training "
                f"split ({first_val} rows, {int(labels.sum())} labelled)"
            )
        mean, std = values[~labels].mean(axis=0), values[~labels].std(axis=0)
        std = np.where(std > 0, std, 1.0)
        normal.append((values[~labels] - mean) / std)
        anomalous.append((values[labels] - mean) / std)
        rows = max(rows, len(series.ts))
    return TrainingRows(np.concatenate(normal), np.concatenate(anomalous), rows)


def draw_replicate(
    source: TrainingRows, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """One series as long as the real one: every row anomalous with the training split's rate."""
    labels = rng.random(source.rows) < source.anomaly_rate
    values = source.normal[rng.integers(0, len(source.normal), source.rows)]
    picks = rng.integers(0, len(source.anomalous), int(labels.sum()))
    values[labels] = source.anomalous[picks]
    return values, labels


@dataclass(frozen=True)
class SplitScores:
    validation: npt.NDArray[np.float64]
    validation_labels: npt.NDArray[np.bool_]
    test: npt.NDArray[np.float64]
    test_labels: npt.NDArray[np.bool_]
    holdout: npt.NDArray[np.float64]


def _windows(
    minute_scores: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_], config: StudyConfig
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    if len(minute_scores) < config.window:
        raise DataError(f"a split of {len(minute_scores)} rows is shorter than one window ({config.window})")
    views = np.lib.stride_tricks.sliding_window_view
    scores = views(minute_scores, config.window)[:: config.step].max(axis=1)
    window_labels = np.asarray(views(labels, config.window)[:: config.step].any(axis=1), dtype=bool)
    return scores, window_labels


def ceiling_detector(
    values: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_], config: StudyConfig
) -> SplitScores:
    """The issue's ceiling: per-minute mean squared z-score (normal training rows), window maximum."""
    first_val, first_test = _cut_points(len(values), config)
    train_normal = values[:first_val][~labels[:first_val]]
    std = train_normal.std(axis=0)
    z = (values - train_normal.mean(axis=0)) / np.where(std > 0, std, 1.0)
    minute = (z**2).mean(axis=1)
    train, train_labels = _windows(minute[:first_val], labels[:first_val], config)
    normal_train = train[~train_labels]
    unseen = early_stopping_holdout(len(normal_train), config.holdout_share)
    validation, validation_labels = _windows(
        minute[first_val:first_test], labels[first_val:first_test], config
    )
    test, test_labels = _windows(minute[first_test:], labels[first_test:], config)
    return SplitScores(validation, validation_labels, test, test_labels, normal_train[unseen])


def test_f1_by_rule(scores: SplitScores) -> dict[str, float] | None:
    """Test F1 of every calibration rule (threshold from validation) and of the best test threshold.

    None when validation or test has no anomalous window (no F1 to speak of).
    """
    if not scores.validation_labels.any() or not scores.test_labels.any():
        return None
    found = {
        c.strategy: counts_at(scores.test, scores.test_labels, c.threshold).f1
        for c in all_strategies(scores.validation, scores.validation_labels, extra_normal=scores.holdout)
    }
    found[ORACLE] = best_f1_every_threshold(scores.test, scores.test_labels).counts.f1
    return found


def _summary(values: npt.NDArray[np.float64]) -> dict[str, float]:
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return {
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "p10": float(p10),
        "median": float(p50),
        "p90": float(p90),
        "share_at_least_target": float((values >= TARGET_F1 - 1e-12).mean()),
    }


def study(
    dataset: Dataset, config: StudyConfig, on_replicate: Callable[[], None] | None = None
) -> dict[str, Any]:
    """The whole study as a report dictionary (see the module docstring)."""
    source = training_rows(dataset, config)
    rng = np.random.default_rng(config.seed)
    rules = (*STRATEGIES, ORACLE)
    rows: list[dict[str, float]] = []
    skipped = 0
    for _ in range(config.replicates):
        values, labels = draw_replicate(source, rng)
        found = test_f1_by_rule(ceiling_detector(values, labels, config))
        if found is None:
            skipped += 1
        else:
            rows.append(found)
        if on_replicate:
            on_replicate()
    if not rows:
        raise DataError("no replicate had anomalies in both validation and test; the anomaly rate is too low")
    table = {rule: np.array([r[rule] for r in rows]) for rule in rules}
    real = _real_split(dataset, config)
    report: dict[str, Any] = {
        "suite": "calibration",
        "config": asdict(config),
        "detector": "per-minute mean squared z-score (normal training rows), maximum over the window",
        "source": {
            "data": str(dataset.source),
            "split": "train",
            "normal_rows": len(source.normal),
            "anomalous_rows": len(source.anomalous),
            "anomaly_rate": source.anomaly_rate,
            "rows_per_replicate": source.rows,
        },
        "target_f1": TARGET_F1,
        "default_rule": BEST_F1_EVERY,
        "replicates": len(rows),
        "skipped_replicates": skipped,
        "test_f1": {rule: _summary(table[rule]) for rule in rules},
        "per_replicate": {rule: [round(float(v), 6) for v in table[rule]] for rule in rules},
        "real_split": real,
    }
    if real is not None:
        alike = np.abs(table[ORACLE] - real[ORACLE]) <= ALIKE_WITHIN
        # Where the real split falls among the replicates: the share of them that did at least as well.
        report["replicates_at_least_real"] = {
            rule: float((table[rule] >= real[rule] - 1e-12).mean()) for rule in rules
        }
        report["alike_real_split"] = {
            "within": ALIKE_WITHIN,
            "replicates": int(alike.sum()),
            "test_f1": {rule: _summary(table[rule][alike]) for rule in rules} if alike.any() else None,
        }
    return report


def replicate_dataset(
    dataset: Dataset, values: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_]
) -> Dataset:
    """A replicate as a one-station data set on the real series' timestamps, for the trainer."""
    first = next(iter(dataset.stations.values()))
    series = StationSeries(
        station_id=first.station_id,
        ts=first.ts[: len(values)],
        values=values,
        labels=labels.astype(np.int8),
        lines=np.arange(len(values), dtype=np.int64) + 2,
    )
    return Dataset(source=dataset.source, sensors=dataset.sensors, stations={series.station_id: series})


def autoencoder_check(
    dataset: Dataset,
    config: StudyConfig,
    count: int,
    options: TrainOptions,
    on_replicate: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The trainer itself (autoencoder, default calibration) on the study's first ``count`` replicates.

    The same seed draws the same replicates as ``study``, so each row pairs the autoencoder with the
    ceiling detector on identical data.
    """
    from trainer.pipeline import run_training

    source = training_rows(dataset, config)
    rng = np.random.default_rng(config.seed)
    rows = []
    for index in range(count):
        values, labels = draw_replicate(source, rng)
        ceiling = test_f1_by_rule(ceiling_detector(values, labels, config))
        if ceiling is not None:
            result = run_training(options, dataset=replicate_dataset(dataset, values, labels)).autoencoder
            rows.append(
                {
                    "replicate": index,
                    "autoencoder_f1": float(result.test["f1"]),
                    "autoencoder_best_possible": float(result.test["best_possible_f1"]),
                    "autoencoder_average_precision": float(result.test["average_precision"]),
                    "ceiling_f1": ceiling[options.calibration_method],
                    "ceiling_best_possible": ceiling[ORACLE],
                }
            )
        if on_replicate:
            on_replicate()
    columns = [k for k in rows[0] if k != "replicate"] if rows else []
    return {
        "replicates": len(rows),
        "calibration": options.calibration_method,
        "mean": {k: float(np.mean([r[k] for r in rows])) for k in columns},
        "share_at_least_target": float(np.mean([r["autoencoder_f1"] >= TARGET_F1 - 1e-12 for r in rows]))
        if rows
        else None,
        "per_replicate": rows,
    }


def _real_split(dataset: Dataset, config: StudyConfig) -> dict[str, float] | None:
    """The same detector and rules on the data set's own split (one station only; else None)."""
    if len(dataset.stations) != 1:
        return None
    series = next(iter(dataset.stations.values()))
    return test_f1_by_rule(ceiling_detector(series.values, series.labels.astype(bool), config))


def run(out: Path, quick: bool = False, lang: str = "en", data: Path | None = None) -> dict[str, Any]:
    """Run the study on the seed data set; write report.json, report.md and plots/ under ``out``."""
    import json

    from detector.errors import ConfigError
    from devtools.progress import progress_board
    from evaluation.suites.calibration_report import render_markdown, write_plots
    from evaluation.suites.seed import SEED_DATA
    from trainer.data import load_csv
    from trainer.model import FitConfig, ModelConfig

    source = (data or SEED_DATA).resolve()
    if not source.exists():
        raise ConfigError(f"seed data set not found at {source}")
    config = StudyConfig(replicates=40 if quick else StudyConfig.replicates)
    dataset = load_csv(source)
    # The autoencoder takes about 45 s a replicate on 2 cores: a handful, to set beside the ceiling.
    trained = (
        TrainOptions(
            data=source,
            model=ModelConfig(encoder_units=(16, 8), decoder_units=(8, 16)),
            fit=FitConfig(epochs=2, patience=1),
            calibration_method=BEST_F1_EVERY,
        )
        if quick
        # A study of the F1-based rules on the seed data: the trainer's F1 default before the budget.
        else TrainOptions(data=source, calibration_method=BEST_F1_EVERY)
    )
    count = QUICK_AUTOENCODER_REPLICATES if quick else AUTOENCODER_REPLICATES
    with progress_board() as board:
        replicates = board.add("calibration: study replicates", config.replicates)
        report = study(dataset, config, on_replicate=replicates.advance)
        autoencoders = board.add("calibration: autoencoder replicates", count)
        report["autoencoder"] = autoencoder_check(
            dataset, config, count, trained, on_replicate=autoencoders.advance
        )
    report["quick"] = quick
    out.mkdir(parents=True, exist_ok=True)
    plots = [str(p.relative_to(out)) for p in write_plots(report, out / "plots", lang)]
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(render_markdown(report, lang, plots))
    _print_summary(report, out)
    return report


def _print_summary(report: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    real = report["real_split"] or {}
    table = Table(title=f"test F1 over {report['replicates']} replicates (threshold from validation)")
    for column in ("rule", "mean", "p10", "p90", f"≥ {TARGET_F1:g}", "real split"):
        table.add_column(column)
    for rule, row in report["test_f1"].items():
        value = real.get(rule)
        table.add_row(
            rule,
            *(f"{row[k]:.3f}" for k in ("mean", "p10", "p90")),
            f"{row['share_at_least_target']:.0%}",
            "—" if value is None else f"{value:.3f}",
        )
    console = Console()
    console.print(table)
    console.print(f"written {out / 'report.json'}, {out / 'report.md'}, {out / 'plots'}")
