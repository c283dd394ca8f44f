"""Centinela's approach on SKAB: a model of normal operation per file, fitted on its training rows only.

Per file: standardise each sensor on the 400 training rows, smooth with a causal moving mean (the
current and the previous ``smoothing - 1`` samples, never later ones), and model normal operation as
a Gaussian of the smoothed vector. A sample's score is its reconstruction error against the normal
mean in the whitened (Mahalanobis) metric, computed with Centinela's own
``detector.scoring.reconstruction_errors``. The alarm threshold is ``factor ×`` the largest training
score; ``factor`` is one global number chosen on the training parts alone (``calibrate_factor``), and
an alarm is held for ``hold`` samples after the score falls back (Centinela's incidents close after a
quiet spell too). Nothing looks at row positions, timestamps or test labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detector.errors import ConfigError
from detector.scoring import reconstruction_errors
from evaluation.suites.skab_data import SENSORS, TRAIN_ROWS, SkabFile

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Motor-housing and fluid temperatures are slow thermal states: they drift for tens of minutes after
# any change of load, so 400 rows (about 7 minutes) cannot show their normal range. On the training
# parts alone (fit on rows 0-199, look at rows 200-399, 10-sample means) Temperature leaves its ±4σ
# envelope on 17.5 % of rows and Thermocouple on 5.4 %, the other sensors on 0-4.5 %; see
# docs/evaluation-skab.md.
THERMAL_SENSORS = ("Temperature", "Thermocouple")
DEFAULT_SENSORS: tuple[str, ...] = tuple(s for s in SENSORS if s not in THERMAL_SENSORS)


@dataclass(frozen=True)
class DetectorConfig:
    """Every global setting of the SKAB detector (the same for all 34 files)."""

    sensors: tuple[str, ...] = DEFAULT_SENSORS
    smoothing: int = 10  # samples in the causal moving mean (10 s at 1 Hz)
    ridge: float = 1e-2  # added to the covariance diagonal: 400 correlated rows estimate it roughly
    hold: int = 20  # samples an alarm stays on after the last exceedance
    factor: float | None = None  # threshold = factor × max training score; None: calibrate_factor
    factor_grid: tuple[float, ...] = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
    forward_fit_rows: int = 250  # calibration: fit on these first training rows...
    target_forward_far_pct: float = 10.0  # ...and allow this share of alarms on the rest of them

    def __post_init__(self) -> None:
        unknown = set(self.sensors) - set(SENSORS)
        if unknown or not self.sensors:
            raise ConfigError(f"sensors must be a non-empty subset of {SENSORS}, got {self.sensors}")
        if self.smoothing < 1 or self.hold < 0 or self.ridge < 0:
            raise ConfigError("smoothing must be ≥ 1, hold ≥ 0 and ridge ≥ 0")
        if not 0 < self.forward_fit_rows - self.smoothing < TRAIN_ROWS - self.smoothing:
            raise ConfigError(f"forward_fit_rows must leave rows on both sides, got {self.forward_fit_rows}")


def causal_mean(values: FloatArray, window: int) -> FloatArray:
    """Mean of each row and the ``window - 1`` rows before it (fewer at the very start)."""
    sums = np.cumsum(np.vstack([np.zeros((1, values.shape[1])), values]), axis=0)
    ends = np.arange(1, values.shape[0] + 1)
    starts = np.maximum(ends - window, 0)
    counts = (ends - starts)[:, None]
    result: FloatArray = (sums[ends] - sums[starts]) / counts
    return result


def hold_alarms(flags: BoolArray, hold: int) -> BoolArray:
    """On while any of the current and previous ``hold`` samples exceeded the threshold (causal)."""
    if hold == 0:
        return flags.copy()
    counts = np.cumsum(np.concatenate(([0], flags.astype(np.int64))))
    ends = np.arange(1, flags.size + 1)
    held: BoolArray = (counts[ends] - counts[np.maximum(ends - hold - 1, 0)]) > 0
    return held


@dataclass
class NormalModel:
    """Gaussian model of the smoothed, standardised sensors on one file's normal rows."""

    center: FloatArray
    scale: FloatArray
    mean: FloatArray
    whitening: FloatArray
    smoothing: int
    training_scores: FloatArray = field(repr=False)

    @classmethod
    def fit(cls, normal_rows: FloatArray, smoothing: int, ridge: float) -> NormalModel:
        """Fit on ``normal_rows`` (rows × sensors); the first ``smoothing`` rows only warm the mean up."""
        center = normal_rows.mean(axis=0)
        scale = normal_rows.std(axis=0)
        scale[scale < 1e-9] = 1.0  # a flat sensor in training: any movement at all should count
        smoothed = causal_mean((normal_rows - center) / scale, smoothing)[smoothing:]
        mean = smoothed.mean(axis=0)
        covariance = np.atleast_2d(np.cov(smoothed, rowvar=False)) + ridge * np.eye(smoothed.shape[1])
        whitening = np.linalg.cholesky(np.linalg.inv(covariance))
        model = cls(center, scale, mean, whitening, smoothing, np.zeros(0))
        model.training_scores = model.score(normal_rows)[smoothing:]
        return model

    def score(self, rows: FloatArray) -> FloatArray:
        """Per-row score: mean squared whitened error against the normal mean (T² / sensors)."""
        smoothed = causal_mean((rows - self.center) / self.scale, self.smoothing)
        whitened = (smoothed - self.mean) @ self.whitening
        scores, _ = reconstruction_errors(whitened[:, None, :], np.zeros_like(whitened[:, None, :]), "mean")
        return scores


def sensor_columns(config: DetectorConfig) -> list[int]:
    return [SENSORS.index(sensor) for sensor in config.sensors]


@dataclass(frozen=True)
class FileDetection:
    """One file scored end to end; ``alarms`` covers every row, the protocol scores rows ≥ 400."""

    file: SkabFile
    scores: FloatArray
    threshold: float
    alarms: BoolArray


def detect_file(file: SkabFile, config: DetectorConfig, factor: float) -> FileDetection:
    """Fit on the file's training rows, score all its rows, threshold and hold."""
    values = file.values[:, sensor_columns(config)]
    model = NormalModel.fit(values[:TRAIN_ROWS], config.smoothing, config.ridge)
    scores = model.score(values)
    threshold = factor * float(model.training_scores.max())
    return FileDetection(file, scores, threshold, hold_alarms(scores > threshold, config.hold))


def forward_false_alarm_pct(files: Sequence[SkabFile], config: DetectorConfig, factor: float) -> float:
    """Share of alarms on training rows the model has not seen: fit on the first rows, score the rest.

    Every row here is normal by the protocol's own assumption, so this needs no labels.
    """
    alarms = rows = 0
    for file in files:
        values = file.values[:TRAIN_ROWS, sensor_columns(config)]
        model = NormalModel.fit(values[: config.forward_fit_rows], config.smoothing, config.ridge)
        threshold = factor * float(model.training_scores.max())
        flags = hold_alarms(model.score(values) > threshold, config.hold)[config.forward_fit_rows :]
        alarms += int(flags.sum())
        rows += flags.size
    return 100.0 * alarms / rows if rows else 0.0


@dataclass(frozen=True)
class Calibration:
    """The global threshold factor and the label-free evidence it was chosen on."""

    factor: float
    forward_far_pct_by_factor: dict[float, float]
    rule: str


def calibrate_factor(
    files: Sequence[SkabFile], config: DetectorConfig, on_factor: Callable[[], None] | None = None
) -> Calibration:
    """The smallest grid factor whose forward false-alarm share is within the target;
    ``on_factor`` is called after each factor of the grid is tried (progress)."""
    if config.factor is not None:
        return Calibration(config.factor, {}, "fixed by configuration")
    table: dict[float, float] = {}
    for factor in config.factor_grid:
        table[factor] = forward_false_alarm_pct(files, config, factor)
        if on_factor is not None:
            on_factor()
    within = [factor for factor, far in table.items() if far <= config.target_forward_far_pct]
    chosen = min(within) if within else max(config.factor_grid)
    rule = (
        f"smallest factor in {list(config.factor_grid)} whose alarm share on training rows "
        f"{config.forward_fit_rows}-{TRAIN_ROWS - 1} (model fitted on rows 0-{config.forward_fit_rows - 1}) "
        f"is ≤ {config.target_forward_far_pct:g} %"
    )
    return Calibration(chosen, table, rule)
