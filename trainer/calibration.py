"""Threshold calibration on validation errors: which score counts as an anomaly, and why.

Every strategy looks at the errors of normal validation windows (what "normal" scores look like);
the best-F1 rules also use the validation labels. ``best_f1_every_threshold`` may also count false
alarms on normal windows the model never learned from outside validation (the trainer passes the
early-stopping holdout), a larger sample of the normal tail. The resulting ``CalibrationRecord`` goes
into the model bundle, so anyone can see how a threshold was chosen.
Pure numpy: the service may recalibrate without TensorFlow or scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.errors import ConfigError, DataError

PERCENTILE_GRID: tuple[float, ...] = tuple(float(p) for p in range(80, 100))
FIXED_PERCENTILES: tuple[float, ...] = (85.0, 90.0, 95.0, 97.5, 99.0)
IQR_FACTOR = 1.5
MAD_FACTOR = 3.0
# Scales the median absolute deviation to a standard deviation for normally distributed errors.
MAD_TO_SIGMA = 1.4826
BEST_F1 = "best_f1_percentile"
BEST_F1_EVERY = "best_f1_every_threshold"
STRATEGIES: tuple[str, ...] = (
    BEST_F1_EVERY,
    BEST_F1,
    *(f"percentile_{p:g}" for p in FIXED_PERCENTILES),
    "iqr",
    "mad",
)


@dataclass(frozen=True)
class Counts:
    """Window-level confusion counts and the scores derived from them (``score > threshold`` alarms)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
        }


def _check(
    scores: npt.ArrayLike, labels: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or s.shape != y.shape:
        raise DataError(f"scores {s.shape} and labels {y.shape} must be matching 1-d arrays")
    if not np.isfinite(s).all():
        raise DataError("scores must be finite")
    return s, y.astype(bool)


def counts_at(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float) -> Counts:
    s, y = _check(scores, labels)
    alarm = s > threshold
    return Counts(
        tp=int((alarm & y).sum()),
        fp=int((alarm & ~y).sum()),
        fn=int((~alarm & y).sum()),
        tn=int((~alarm & ~y).sum()),
    )


@dataclass(frozen=True)
class Candidate:
    """One strategy's threshold and its metrics on the split it was measured on."""

    strategy: str
    threshold: float
    percentile: float | None
    counts: Counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "threshold": self.threshold,
            "percentile": self.percentile,
            **self.counts.to_dict(),
        }


def iqr_threshold(normal_scores: npt.ArrayLike, factor: float = IQR_FACTOR) -> float:
    """Tukey's fence: third quartile plus ``factor`` interquartile ranges."""
    q1, q3 = np.percentile(np.asarray(normal_scores, dtype=np.float64), [25.0, 75.0])
    return float(q3 + factor * (q3 - q1))


def mad_threshold(normal_scores: npt.ArrayLike, factor: float = MAD_FACTOR) -> float:
    """Median plus ``factor`` robust standard deviations (median absolute deviation × 1.4826)."""
    s = np.asarray(normal_scores, dtype=np.float64)
    median = float(np.median(s))
    return median + factor * MAD_TO_SIGMA * float(np.median(np.abs(s - median)))


def best_f1_percentile(
    scores: npt.ArrayLike, labels: npt.ArrayLike, grid: Sequence[float] = PERCENTILE_GRID
) -> Candidate:
    """The percentile of the normal scores whose threshold gives the best F1.

    Where several neighbouring percentiles tie, the middle one is taken: on a small validation set
    the first of a tie sits right at the edge of the plateau, the middle leaves margin both ways.
    """
    s, y = _check(scores, labels)
    normal = s[~y]
    if not len(normal):
        raise DataError("calibration needs normal windows in the validation split")
    if not len(grid):
        raise ConfigError("the percentile grid is empty")
    candidates = []
    for p in grid:
        threshold = float(np.percentile(normal, p))
        candidates.append(Candidate(BEST_F1, threshold, float(p), counts_at(s, y, threshold)))
    best = max(c.counts.f1 for c in candidates)
    tied = [i for i, c in enumerate(candidates) if c.counts.f1 == best]
    # Only the contiguous run starting at the first best counts as one plateau.
    run = [tied[0]]
    for i in tied[1:]:
        if i != run[-1] + 1:
            break
        run.append(i)
    return candidates[run[len(run) // 2]]


def best_f1_every_threshold(
    scores: npt.ArrayLike, labels: npt.ArrayLike, extra_normal: npt.ArrayLike = ()
) -> Candidate:
    """The threshold with the best F1 among every distinct cut, in the middle of its plateau.

    A 20-point percentile grid of about 180 normal validation windows is coarse: each step moves the
    threshold by one or two windows' scores, and the best grid point tends to sit right above the
    largest normal score seen. Here every gap between sorted scores is a candidate, and the threshold
    is the middle of the first run of best-F1 cuts in score units, leaving margin both ways.

    False alarms are counted as a rate over the normal validation windows plus ``extra_normal``
    (normal windows from outside validation that the model never fitted), scaled to the number of
    normal validation windows so precision keeps validation's class balance; recall comes from the
    validation anomalies only. With no anomalies the threshold is the largest normal score seen.
    The candidate's counts are the plain validation counts at the chosen threshold.
    """
    s, y = _check(scores, labels)
    extra = np.asarray(extra_normal, dtype=np.float64).ravel()
    if not np.isfinite(extra).all():
        raise DataError("extra normal scores must be finite")
    normal = s[~y]
    if not len(normal):
        raise DataError("calibration needs normal windows in the validation split")
    pool = np.sort(np.concatenate([normal, extra]))
    anomalous = np.sort(s[y])
    if not len(anomalous):
        threshold = float(pool[-1])
        return Candidate(BEST_F1_EVERY, threshold, None, counts_at(s, y, threshold))
    values = np.unique(np.concatenate([pool, anomalous]))
    # Cut k alarms on scores >= values[k]: any threshold in [values[k-1], values[k]) does the same.
    below = np.nextafter(values[0], -np.inf)
    cuts = np.concatenate([[below], (values[1:] + values[:-1]) / 2])
    tp = len(anomalous) - np.searchsorted(anomalous, cuts, side="right")
    fn = len(anomalous) - tp
    fp = (len(pool) - np.searchsorted(pool, cuts, side="right")) / len(pool) * len(normal)
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(len(cuts)), where=denominator > 0)
    best = int(np.argmax(f1))
    last = best
    while last + 1 < len(f1) and f1[last + 1] == f1[best]:
        last += 1
    low = values[best - 1] if best > 0 else below
    threshold = float(below if last == 0 else (low + values[last]) / 2)
    return Candidate(BEST_F1_EVERY, threshold, None, counts_at(s, y, threshold))


def all_strategies(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    grid: Sequence[float] = PERCENTILE_GRID,
    extra_normal: npt.ArrayLike = (),
) -> list[Candidate]:
    """Every strategy of ``STRATEGIES`` with its threshold and metrics on these scores."""
    s, y = _check(scores, labels)
    normal = s[~y]
    if not len(normal):
        raise DataError("calibration needs normal windows in the validation split")
    found = [best_f1_every_threshold(s, y, extra_normal), best_f1_percentile(s, y, grid)]
    for p in FIXED_PERCENTILES:
        threshold = float(np.percentile(normal, p))
        found.append(Candidate(f"percentile_{p:g}", threshold, p, counts_at(s, y, threshold)))
    for name, threshold in (("iqr", iqr_threshold(normal)), ("mad", mad_threshold(normal))):
        found.append(Candidate(name, threshold, None, counts_at(s, y, threshold)))
    return found


@dataclass(frozen=True)
class CalibrationRecord:
    """How the threshold was chosen: the method, its value, and every strategy compared on validation."""

    method: str
    threshold: float
    percentile: float | None
    validation: Counts
    strategies: list[Candidate]
    validation_windows: int
    validation_normal_windows: int
    percentile_grid: tuple[float, ...] = PERCENTILE_GRID
    extra_normal_windows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def threshold_of(self, strategy: str) -> float:
        for candidate in self.strategies:
            if candidate.strategy == strategy:
                return candidate.threshold
        raise ConfigError(f"unknown calibration strategy {strategy!r}; known: {', '.join(STRATEGIES)}")

    def evaluate(self, scores: npt.ArrayLike, labels: npt.ArrayLike) -> list[Candidate]:
        """The same thresholds applied to another split (test): the honest comparison."""
        return [
            Candidate(c.strategy, c.threshold, c.percentile, counts_at(scores, labels, c.threshold))
            for c in self.strategies
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "threshold": self.threshold,
            "percentile": self.percentile,
            "split": "validation",
            "validation": self.validation.to_dict(),
            "validation_windows": self.validation_windows,
            "validation_normal_windows": self.validation_normal_windows,
            "percentile_grid": [min(self.percentile_grid), max(self.percentile_grid)],
            # Normal windows from outside validation counted for false alarms by best_f1_every_threshold.
            "extra_normal_windows": self.extra_normal_windows,
            "strategies": [c.to_dict() for c in self.strategies],
            **self.extra,
        }


def calibrate(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    method: str = BEST_F1,
    grid: Sequence[float] = PERCENTILE_GRID,
    extra_normal: npt.ArrayLike = (),
) -> CalibrationRecord:
    """Choose the threshold on validation scores with ``method`` (one of ``STRATEGIES``).

    ``extra_normal``: scores of normal windows from outside validation that the model never fitted;
    only ``best_f1_every_threshold`` uses them (to count false alarms).
    """
    if method not in STRATEGIES:
        raise ConfigError(f"unknown calibration method {method!r}; choose one of {', '.join(STRATEGIES)}")
    s, y = _check(scores, labels)
    extra = np.asarray(extra_normal, dtype=np.float64).ravel()
    strategies = all_strategies(s, y, grid, extra)
    chosen = next(c for c in strategies if c.strategy == method)
    return CalibrationRecord(
        method=method,
        threshold=chosen.threshold,
        percentile=chosen.percentile,
        validation=chosen.counts,
        strategies=strategies,
        validation_windows=len(s),
        validation_normal_windows=int((~y).sum()),
        percentile_grid=tuple(grid),
        extra_normal_windows=len(extra),
    )
