"""One training run end to end: prepare, train, choose aggregation, calibrate, evaluate, compare."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.errors import ConfigError, DataError
from detector.scoring import AGGREGATIONS, reconstruction_errors
from detector.topology import Topology
from trainer.baselines import BASELINES, fit_baseline
from trainer.calibration import (
    BEST_F1,
    BEST_F1_EVERY,
    STRATEGIES,
    CalibrationRecord,
    Candidate,
    calibrate,
    counts_at,
)
from trainer.data import Dataset, load_csv
from trainer.line import (
    DEFAULT_SEGMENT_BUDGET,
    LineTraining,
    check_budget,
    check_topology_against_data,
    resolve_topology,
    train_line,
)
from trainer.metrics import event_metrics, window_metrics
from trainer.model import FitConfig, ModelConfig
from trainer.operating_point import (
    DEFAULT_ALARM_BUDGET,
    DEFAULT_MAX_NORMAL_ALARM_SHARE,
    FALSE_ALARM_BUDGET,
    NormalWindows,
    OperatingPointCheck,
    budget_threshold,
    check_budget_options,
    check_operating_point,
    per_station_budget_thresholds,
)
from trainer.prepare import Prepared, WindowSet, prepare
from trainer.split import SplitBounds, date_bounds
from trainer.supervised import LabelHead, fit_label_head
from trainer.training import EpochCallback, TrainedModel, early_stopping_holdout, train_autoencoder

log = logging.getLogger(__name__)

UNSUPERVISED = "unsupervised"
WITH_LABELS = "labels"
AUTOENCODER = "autoencoder"
AUTOENCODER_LABELS = "autoencoder_with_labels"
HOLDOUT_SOURCE = "early-stopping holdout (the last normal training windows, never fitted)"
CALIBRATION_METHODS: tuple[str, ...] = (FALSE_ALARM_BUDGET, *STRATEGIES)


@dataclass(frozen=True)
class TrainOptions:
    """Everything a run depends on; the CLI builds one from its flags."""

    data: Path
    sensors: tuple[str, ...] | None = None
    # Samples (a plain integer, as before) or a duration such as "30min" (see trainer.prepare).
    window: int | str = 30
    step: int | str = 5
    train_ratio: float = 0.6
    val_ratio: float = 0.2
    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    aggregation: str = "auto"
    topk: int = 5
    # An operator's budget of false alarms (per station-month) on normal validation and holdout
    # windows; the F1-based rules (``trainer.calibration.STRATEGIES``) remain by name.
    calibration_method: str = FALSE_ALARM_BUDGET
    alarm_budget: float = DEFAULT_ALARM_BUDGET
    max_normal_alarm_share: float = DEFAULT_MAX_NORMAL_ALARM_SHARE
    # Splits by date (ISO, UTC when no offset), instead of the ratios; both or neither.
    train_until: str | None = None
    validate_until: str | None = None
    # Labels: which column, which of its values are anomalies (None: 0/1); empty cells are unknown,
    # left out of metrics and thresholds, and of training unless ``train_on_unlabelled``.
    label_column: str = "label"
    anomaly_values: tuple[str, ...] | None = None
    train_on_unlabelled: bool = False
    use_labels: bool = False
    advanced_models: bool = False
    # The line's topology (a file, or one already loaded): its segments are calibrated besides the
    # autoencoder and travel in the bundle (see trainer/line.py). None: stations only, as before.
    topology: Path | Topology | None = None
    segment_budget: float = DEFAULT_SEGMENT_BUDGET  # false alarms per segment-month

    def __post_init__(self) -> None:
        if self.aggregation != "auto" and self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"--aggregation must be auto or one of {', '.join(AGGREGATIONS)}")
        if self.topk < 1:
            raise ConfigError(f"--topk must be at least 1, got {self.topk}")
        check_budget(self.segment_budget)
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ConfigError(f"--calibration must be one of {', '.join(CALIBRATION_METHODS)}")
        check_budget_options(self.alarm_budget, self.max_normal_alarm_share)
        if (self.train_until is None) != (self.validate_until is None):
            raise ConfigError("--train-until and --validate-until go together: give both or neither")

    @property
    def topology_source(self) -> str | None:
        """Where the topology came from, for messages and the report (None without one)."""
        if self.topology is None:
            return None
        return str(self.topology) if isinstance(self.topology, Path) else "topology given to run_training"

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": str(self.data),
            "sensors": list(self.sensors) if self.sensors else None,
            "window": self.window,
            "step": self.step,
            "train_ratio": self.train_ratio,
            "val_ratio": self.val_ratio,
            "train_until": self.train_until,
            "validate_until": self.validate_until,
            "label_column": self.label_column,
            "anomaly_values": list(self.anomaly_values) if self.anomaly_values is not None else None,
            "train_on_unlabelled": self.train_on_unlabelled,
            "model": self.model.to_dict(),
            "fit": self.fit.to_dict(),
            "aggregation": self.aggregation,
            "topk": self.topk,
            "calibration_method": self.calibration_method,
            "alarm_budget": self.alarm_budget,
            "max_normal_alarm_share": self.max_normal_alarm_share,
            "use_labels": self.use_labels,
            "advanced_models": self.advanced_models,
            "topology": self.topology_source,
            "segment_budget": self.segment_budget,
        }


@dataclass
class ModelResult:
    """One detector's scores on validation and test, its calibration, and its metrics on both."""

    name: str
    mode: str
    calibration: CalibrationRecord
    scores: dict[str, npt.NDArray[np.float64]]
    validation: dict[str, Any]
    test: dict[str, Any]
    test_strategies: list[Candidate]
    events: dict[str, Any]
    aggregation: str | None = None

    def summary(self) -> dict[str, Any]:
        keys = ("precision", "recall", "f1", "roc_auc", "average_precision", "threshold", "best_possible_f1")
        return {
            "mode": self.mode,
            "aggregation": self.aggregation,
            "split": "test",
            **{k: self.test[k] for k in keys},
            "confusion_matrix": self.test["confusion_matrix"],
            "classification_report": self.test["classification_report"],
            "events": {k: v for k, v in self.events.items() if k != "detail"},
            "validation": {k: self.validation[k] for k in keys},
        }


@dataclass
class RunResult:
    options: TrainOptions
    dataset: Dataset
    prepared: Prepared
    trained: TrainedModel
    reconstructions: dict[str, npt.NDArray[np.float32]]
    aggregation: str
    aggregation_selection: dict[str, dict[str, float]]
    models: dict[str, ModelResult]
    seconds: dict[str, float]
    label_head: LabelHead | None = None
    line: LineTraining | None = None
    # The autoencoder's threshold on the test split's normal windows (never fitted).
    operating_point: OperatingPointCheck | None = None

    @property
    def autoencoder(self) -> ModelResult:
        return self.models[AUTOENCODER]


def normal_windows(windows: WindowSet, scores: npt.NDArray[np.float64]) -> NormalWindows:
    """The windows of a split known to be normal (label 0), with their scores."""
    normal = windows.labels == 0
    return NormalWindows(scores[normal], windows.station_ids[normal], windows.ends[normal])


def evaluate_detector(
    name: str,
    mode: str,
    validation_scores: npt.NDArray[np.float64],
    test_scores: npt.NDArray[np.float64],
    prepared: Prepared,
    *,
    method: str = BEST_F1,
    aggregation: str | None = None,
    extra_normal_scores: npt.NDArray[np.float64] | None = None,
    extra_normal: NormalWindows | None = None,
    alarm_budget: float = DEFAULT_ALARM_BUDGET,
) -> ModelResult:
    """Threshold from validation only (plus unseen normal training windows), then the same on test.

    ``method`` ``false_alarm_budget``: the threshold meets ``alarm_budget`` alarms per station-month on
    the normal validation windows plus ``extra_normal`` (``trainer.operating_point``); the F1-based
    rules are still computed and compared beside it.
    """
    val, test = prepared["validation"], prepared["test"]
    # Windows with an unknown label take part in no metric and no threshold choice.
    known_val, known_test = val.known, test.known
    val_scores, val_labels = validation_scores[known_val], val.labels[known_val]
    test_known_scores, test_labels = test_scores[known_test], test.labels[known_test]
    if extra_normal is not None and extra_normal_scores is None:
        extra_normal_scores = extra_normal.scores
    extra = () if extra_normal_scores is None else extra_normal_scores
    f1_method = BEST_F1_EVERY if method == FALSE_ALARM_BUDGET else method
    record = calibrate(val_scores, val_labels, method=f1_method, extra_normal=extra)
    if len(extra):
        record = dataclasses.replace(record, extra={**record.extra, "extra_normal_source": HOLDOUT_SOURCE})
    if method == FALSE_ALARM_BUDGET:
        pool = [normal_windows(val, validation_scores)] + ([extra_normal] if extra_normal is not None else [])
        joined = NormalWindows.join(pool)
        threshold, notes = budget_threshold(joined, prepared.spec.step, alarm_budget)
        if len(np.unique(joined.station_ids)) > 1:
            notes["per_station_thresholds"] = per_station_budget_thresholds(
                joined, prepared.spec.step, alarm_budget
            )
        counts = counts_at(val_scores, val_labels, threshold)
        record = dataclasses.replace(
            record,
            method=FALSE_ALARM_BUDGET,
            threshold=threshold,
            percentile=None,
            validation=counts,
            strategies=[Candidate(FALSE_ALARM_BUDGET, threshold, None, counts), *record.strategies],
            extra={**record.extra, FALSE_ALARM_BUDGET: notes},
        )
    alarms = test_scores > record.threshold
    return ModelResult(
        name=name,
        mode=mode,
        calibration=record,
        scores={"validation": validation_scores, "test": test_scores},
        validation=window_metrics(val_scores, val_labels, record.threshold),
        test=window_metrics(test_known_scores, test_labels, record.threshold),
        test_strategies=record.evaluate(test_known_scores, test_labels),
        events=event_metrics(test, alarms, prepared.spec.length, prepared.spec.step),
        aggregation=aggregation,
    )


def choose_aggregation(
    validation: WindowSet,
    x_hat: npt.NDArray[np.float32],
    topk: int,
    method: str = BEST_F1,
    holdout: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None = None,
) -> tuple[str, dict[str, dict[str, float]]]:
    """The aggregation with the best calibrated validation F1 (ties: higher validation AP).

    ``holdout``: normal windows the model did not fit and their reconstructions, for calibration.
    """
    from sklearn.metrics import average_precision_score

    # The aggregation is chosen by what separates anomalies from normal windows; the budget then
    # sets the threshold of the chosen one.
    method = BEST_F1_EVERY if method == FALSE_ALARM_BUDGET else method
    table: dict[str, dict[str, float]] = {}
    known = validation.known
    labels = validation.labels[known]
    for aggregation in AGGREGATIONS:
        scores, _ = reconstruction_errors(validation.x[known], x_hat[known], aggregation, topk)
        extra: npt.NDArray[np.float64] | tuple[()] = ()
        if holdout is not None:
            extra, _ = reconstruction_errors(holdout[0], holdout[1], aggregation, topk)
        record = calibrate(scores, labels, method=method, extra_normal=extra)
        ap = average_precision_score(labels, scores) if labels.any() else float("nan")
        table[aggregation] = {
            "validation_f1": record.validation.f1,
            "validation_average_precision": float(ap),
        }
    best = max(table, key=lambda a: (table[a]["validation_f1"], table[a]["validation_average_precision"]))
    return best, table


def run_training(
    options: TrainOptions,
    on_epoch: EpochCallback | None = None,
    on_stage: Callable[[str], None] | None = None,
    dataset: Dataset | None = None,
    bounds: SplitBounds | None = None,
) -> RunResult:
    """Train and evaluate one configuration; nothing is written (see ``reports`` and ``export``).

    With ``options.topology``, the topology is loaded and checked against the data before any
    training, and every segment is calibrated (``RunResult.line``; see ``trainer.line``).
    """
    stage = on_stage or (lambda _: None)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    # A bad topology stops the run before anything is loaded or trained.
    topology = None if options.topology is None else resolve_topology(options.topology)
    topology_source = options.topology_source or "topology"
    stage("loading data")
    data = dataset or load_csv(
        options.data,
        sensors=options.sensors,
        label_column=options.label_column,
        anomaly_values=options.anomaly_values,
    )
    if data.n_missing_cells or data.n_unknown:
        stage(
            f"{data.n_missing_cells} empty sensor cells (gaps for the windowing), "
            f"{data.n_unknown} rows with an unknown label"
            + (" (kept for training: --train-on-unlabelled)" if options.train_on_unlabelled else "")
        )
    if topology is not None:
        check_topology_against_data(topology, data, topology_source)
    if bounds is None and options.train_until is not None and options.validate_until is not None:
        bounds = date_bounds(data, options.train_until, options.validate_until)
    prepared = prepare(
        data,
        window=options.window,
        step=options.step,
        train_ratio=options.train_ratio,
        val_ratio=options.val_ratio,
        bounds=bounds,
    )
    seconds["prepare"] = time.perf_counter() - started
    for note in prepared.notes:
        stage(note)

    line: LineTraining | None = None
    if topology is not None:
        stage("calibrating the line's segments (training and validation periods)")
        line_started = time.perf_counter()
        line = train_line(
            topology,
            data,
            prepared.bounds,
            budget_per_segment_month=options.segment_budget,
            source=topology_source,
        )
        seconds["line"] = time.perf_counter() - line_started

    stage("training the autoencoder")
    train = prepared["train"]
    # Normal windows, and with --train-on-unlabelled those of unknown label too: never an anomalous one.
    fitted = (train.labels != 1) if options.train_on_unlabelled else (train.labels == 0)
    trained = train_autoencoder(train.x[fitted], options.model, options.fit, on_epoch=on_epoch)
    seconds["train"] = trained.seconds

    stage("scoring")
    scored = time.perf_counter()
    x_hat = {name: trained.reconstruct(ws.x) for name, ws in prepared.splits.items()}
    # The normal training windows early stopping held out: never fitted, so their scores are a fair
    # extra sample of the normal tail for calibration (validation alone has about 150-180).
    unseen_index = np.flatnonzero(fitted)[
        early_stopping_holdout(int(fitted.sum()), options.fit.validation_split)
    ]
    unseen_index = unseen_index[train.labels[unseen_index] == 0]  # known normal only, for calibration
    holdout = (train.x[unseen_index], x_hat["train"][unseen_index])
    holdout_where = (train.station_ids[unseen_index], train.ends[unseen_index])
    if options.aggregation == "auto":
        aggregation, selection = choose_aggregation(
            prepared["validation"], x_hat["validation"], options.topk, options.calibration_method, holdout
        )
    else:
        aggregation, selection = options.aggregation, {}

    def ae_scores(split: str) -> npt.NDArray[np.float64]:
        scores, _ = reconstruction_errors(prepared[split].x, x_hat[split], aggregation, options.topk)
        return scores

    holdout_scores, _ = reconstruction_errors(holdout[0], holdout[1], aggregation, options.topk)

    models = {
        AUTOENCODER: evaluate_detector(
            AUTOENCODER,
            UNSUPERVISED,
            ae_scores("validation"),
            ae_scores("test"),
            prepared,
            method=options.calibration_method,
            aggregation=aggregation,
            extra_normal=NormalWindows(holdout_scores, *holdout_where),
            alarm_budget=options.alarm_budget,
        )
    }
    ae = models[AUTOENCODER]
    operating_point = check_operating_point(
        normal_windows(prepared["test"], ae.scores["test"]),
        prepared.spec.step,
        ae.calibration.threshold,
        options.max_normal_alarm_share,
    )
    stage(operating_point.message())
    head: LabelHead | None = None
    if options.use_labels:
        stage("learning the labelled signature (training split)")
        if not train.step_labels.any():
            raise DataError(
                f"{data.source}, column 'label': --use-labels needs labelled anomalies in the training "
                f"split ({train.rows} rows, none labelled)"
            )
        # Windows with an unknown sample would teach unknown minutes as normal: left out.
        known = train.known
        head = fit_label_head(
            (train.x - x_hat["train"])[known], train.step_labels[known], seed=options.fit.seed
        )
        models[AUTOENCODER_LABELS] = evaluate_detector(
            AUTOENCODER_LABELS,
            WITH_LABELS,
            head.score(prepared["validation"].x - x_hat["validation"]),
            head.score(prepared["test"].x - x_hat["test"]),
            prepared,
            method=options.calibration_method,
            aggregation="max",
            alarm_budget=options.alarm_budget,
        )
    seconds["score"] = time.perf_counter() - scored

    if options.advanced_models:
        stage("IsolationForest and LocalOutlierFactor")
        baseline_start = time.perf_counter()
        for name in BASELINES:
            baseline = fit_baseline(name, prepared["train"].normal, seed=options.fit.seed)
            models[name] = evaluate_detector(
                name,
                UNSUPERVISED,
                baseline.score(prepared["validation"].x),
                baseline.score(prepared["test"].x),
                prepared,
                method=options.calibration_method,
                alarm_budget=options.alarm_budget,
            )
        seconds["baselines"] = time.perf_counter() - baseline_start
    seconds["total"] = time.perf_counter() - started
    return RunResult(
        options=options,
        dataset=data,
        prepared=prepared,
        trained=trained,
        reconstructions=x_hat,
        aggregation=aggregation,
        aggregation_selection=selection,
        models=models,
        seconds=seconds,
        label_head=head,
        line=line,
        operating_point=operating_point,
    )
