"""Chronological split: train on the past, calibrate on the next period, test on the last one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.errors import ConfigError, DataError
from trainer.data import Dataset, StationSeries

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitBounds:
    """Cut times (UTC): train is ``ts < validation_start``, test is ``test_start <= ts < end``.

    ``end`` is None for the usual split (test runs to the last row); walk-forward folds set it.
    """

    validation_start: np.datetime64
    test_start: np.datetime64
    end: np.datetime64 | None = None

    def mask(self, split: str, ts: np.ndarray) -> np.ndarray:
        if split == "train":
            return np.asarray(ts < self.validation_start)
        if split == "validation":
            return np.asarray((ts >= self.validation_start) & (ts < self.test_start))
        if split == "test":
            after = ts >= self.test_start
            return np.asarray(after if self.end is None else after & (ts < self.end))
        raise ConfigError(f"unknown split {split!r}")


def check_ratios(train_ratio: float, val_ratio: float) -> None:
    if not (0.0 < train_ratio < 1.0 and 0.0 < val_ratio < 1.0 and train_ratio + val_ratio < 1.0):
        raise ConfigError(
            f"--train-ratio ({train_ratio}) and --val-ratio ({val_ratio}) must be in (0, 1) "
            "and leave room for a test split"
        )


def chronological_bounds(dataset: Dataset, train_ratio: float = 0.6, val_ratio: float = 0.2) -> SplitBounds:
    """Cut at the times that leave ``train_ratio`` and ``val_ratio`` of the distinct timestamps before.

    Counting distinct timestamps (not rows) cuts every station at the same instant, so no station's
    test period overlaps another's training period; on one regular series it is the original's
    row split (``int(n * 0.6)`` rows for training).
    """
    check_ratios(train_ratio, val_ratio)
    times = np.unique(np.concatenate([series.ts for series in dataset.stations.values()]))
    if len(times) < 3:
        raise DataError(f"{dataset.source}: {len(times)} distinct timestamps, too few to split in three")
    first_val = int(len(times) * train_ratio)
    first_test = int(len(times) * (train_ratio + val_ratio))
    first_val = min(max(first_val, 1), len(times) - 2)
    first_test = min(max(first_test, first_val + 1), len(times) - 1)
    return SplitBounds(validation_start=times[first_val], test_start=times[first_test])


def parse_instant(text: str, flag: str) -> np.datetime64:
    """An ISO date or date-time as a UTC instant (no offset: UTC; a bare date: its midnight)."""
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise ConfigError(
            f"{flag} must be an ISO date or date-time (e.g. 2025-03-01T00:00Z), got {text!r}"
        ) from error
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(parsed, "ns")


def date_bounds(dataset: Dataset, train_until: str, validate_until: str) -> SplitBounds:
    """Train before ``train_until``, validate until ``validate_until``, test from then on (UTC).

    Real history is laid out by dates (normal months, then an event); each split must hold rows.
    """
    validation_start = parse_instant(train_until, "--train-until")
    test_start = parse_instant(validate_until, "--validate-until")
    if not validation_start < test_start:
        raise ConfigError(
            f"--train-until ({train_until}) must come before --validate-until ({validate_until})"
        )
    bounds = SplitBounds(validation_start=validation_start, test_start=test_start)
    times = np.unique(np.concatenate([series.ts for series in dataset.stations.values()]))
    for split in SPLITS:
        if not bounds.mask(split, times).any():
            raise DataError(
                f"{dataset.source}: no rows in the {split} split with --train-until {train_until} and "
                f"--validate-until {validate_until} (data from {times[0]}Z to {times[-1]}Z)"
            )
    return bounds


def walk_forward_bounds(dataset: Dataset, folds: int) -> list[SplitBounds]:
    """``folds`` expanding-window folds over ``folds + 2`` equal periods of distinct timestamps.

    Fold ``k`` trains on periods ``0..k``, calibrates on period ``k + 1`` and tests on ``k + 2``,
    so every test period lies after everything the fold learned from or calibrated on.
    """
    if folds < 1:
        raise ConfigError(f"--walk-forward needs at least 1 fold, got {folds}")
    times = np.unique(np.concatenate([series.ts for series in dataset.stations.values()]))
    size = len(times) // (folds + 2)
    if size < 2:
        raise DataError(f"{dataset.source}: {len(times)} timestamps are too few for {folds} folds")
    bounds = []
    for k in range(folds):
        end_index = (k + 3) * size
        bounds.append(
            SplitBounds(
                validation_start=times[(k + 1) * size],
                test_start=times[(k + 2) * size],
                end=times[end_index] if end_index < len(times) and k < folds - 1 else None,
            )
        )
    return bounds


def split_station(series: StationSeries, bounds: SplitBounds, split: str) -> StationSeries:
    return series.select(bounds.mask(split, series.ts))


def split_dataset(dataset: Dataset, bounds: SplitBounds, split: str) -> Dataset:
    """The rows of one split, every station cut at the same times."""
    return Dataset(
        source=dataset.source,
        sensors=dataset.sensors,
        stations={sid: split_station(series, bounds, split) for sid, series in dataset.stations.items()},
    )
