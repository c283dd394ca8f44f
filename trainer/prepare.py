"""From labelled rows to scaled windows per split: the one place the trainer cuts windows.

Windows come from ``detector.windows.batch_windows``, the function the service's buffers match,
so the model is trained on exactly what it will be served. Scalers are fitted per station on the
normal rows of the training span only (labelled rows would stretch the scale and hide anomalies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from detector.errors import ConfigError, DataError
from detector.scaling import Scaler, StationScalers
from detector.windows import WindowSpec, batch_windows
from trainer.data import Dataset, StationSeries
from trainer.split import SPLITS, SplitBounds, chronological_bounds, split_station


@dataclass(frozen=True)
class Event:
    """A contiguous run of labelled samples of one station: one anomaly as an operator sees it."""

    station_id: str
    start: np.datetime64
    end: np.datetime64  # last labelled sample


@dataclass(frozen=True)
class WindowSet:
    """The windows of one split, all stations together, in station then time order."""

    name: str
    station_ids: npt.NDArray[np.str_]
    ends: npt.NDArray[np.datetime64]
    raw: npt.NDArray[np.float32]
    x: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int8]
    step_labels: npt.NDArray[np.int8]
    rows: int
    anomalous_rows: int
    skipped: int
    events: list[Event] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def normal(self) -> npt.NDArray[np.float32]:
        normal: npt.NDArray[np.float32] = self.x[self.labels == 0]
        return normal

    def summary(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "anomalous_rows": self.anomalous_rows,
            "windows": len(self),
            "anomalous_windows": int(self.labels.sum()),
            "skipped_windows": self.skipped,
            "events": len(self.events),
        }


@dataclass(frozen=True)
class Prepared:
    sensors: tuple[str, ...]
    spec: WindowSpec
    scalers: StationScalers
    bounds: SplitBounds
    splits: dict[str, WindowSet]

    def __getitem__(self, name: str) -> WindowSet:
        return self.splits[name]


def infer_sampling(dataset: Dataset) -> timedelta:
    """The most common gap between consecutive samples, over all stations."""
    gaps = np.concatenate([np.diff(series.ts) for series in dataset.stations.values()])
    gaps = gaps[gaps > np.timedelta64(0, "ns")]
    if not len(gaps):
        raise DataError(f"{dataset.source}: too few rows to infer the sampling period")
    values, counts = np.unique(gaps.astype("timedelta64[s]").astype(np.int64), return_counts=True)
    seconds = int(values[np.argmax(counts)])
    if seconds <= 0:
        raise DataError(f"{dataset.source}: samples closer than one second are not supported")
    return timedelta(seconds=seconds)


def window_spec(dataset: Dataset, window: int, step: int, sampling: timedelta | None = None) -> WindowSpec:
    """Window and step are counted in samples (minutes on the one-minute seed data)."""
    if window < 2 or step < 1:
        raise ConfigError(f"--window must be at least 2 and --step at least 1 samples, got {window}, {step}")
    period = sampling or infer_sampling(dataset)
    return WindowSpec(length=period * window, step=period * step, sampling=period)


def find_events(series: StationSeries) -> list[Event]:
    """Contiguous labelled samples (consecutive rows) make one event."""
    flagged = series.labels.astype(bool)
    if not flagged.any():
        return []
    edges = np.diff(np.concatenate(([0], flagged.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1) - 1
    return [Event(series.station_id, series.ts[a], series.ts[b]) for a, b in zip(starts, stops, strict=True)]


def fit_scalers(dataset: Dataset, bounds: SplitBounds) -> StationScalers:
    """Per station, mean and scale of the normal training rows; the fallback pools every station's."""
    per_station: dict[str, Scaler] = {}
    pooled: list[npt.NDArray[np.float64]] = []
    for station, series in dataset.stations.items():
        train = split_station(series, bounds, "train")
        normal = train.values[train.labels == 0]
        if len(normal) < 2:
            span = _lines(train) if len(train) else "no rows"
            raise DataError(
                f"{dataset.source}, {span}, column 'label': the training split of station {station!r} "
                f"has {len(normal)} normal rows; the scaler needs at least 2"
            )
        per_station[station] = Scaler.fit(normal)
        pooled.append(normal)
    return StationScalers(per_station=per_station, fallback=Scaler.fit(np.concatenate(pooled)))


def _lines(series: StationSeries) -> str:
    return f"lines {int(series.lines.min())}-{int(series.lines.max())}"


def cut_windows(
    dataset: Dataset, bounds: SplitBounds, split: str, spec: WindowSpec, scalers: StationScalers
) -> WindowSet:
    """Cut one split per station (windows never straddle two splits) and scale them."""
    ids: list[npt.NDArray[np.str_]] = []
    ends: list[npt.NDArray[np.datetime64]] = []
    raws: list[npt.NDArray[np.float32]] = []
    steps: list[npt.NDArray[np.float32]] = []
    events: list[Event] = []
    rows = anomalous = skipped = 0
    T, S = spec.samples_per_window, len(dataset.sensors)
    for station, series in dataset.stations.items():
        part = split_station(series, bounds, split)
        rows += len(part)
        anomalous += int(part.labels.sum())
        if not len(part):
            continue
        events.extend(find_events(part))
        # The labels ride along as one more column, so each window also carries its per-step labels.
        stacked = np.column_stack([part.values, part.labels.astype(np.float64)])
        batch = batch_windows(part.ts, stacked, spec)
        skipped += len(batch.skipped)
        ids.append(np.full(len(batch.ends), station))
        ends.append(batch.ends)
        raws.append(batch.data[:, :, :S])
        steps.append(batch.data[:, :, S])
    raw = np.concatenate(raws) if raws else np.empty((0, T, S), np.float32)
    step_labels = (np.concatenate(steps) if steps else np.empty((0, T), np.float32)) > 0.5
    station_ids = np.concatenate(ids) if ids else np.empty(0, dtype=str)
    if not len(raw):
        lines = [_lines(split_station(s, bounds, split)) for s in dataset.stations.values()]
        raise DataError(
            f"{dataset.source}, {'; '.join(x for x in lines if x) or 'no rows'}: the {split} split has "
            f"{rows} rows, too few for one window of {T} samples"
        )
    return WindowSet(
        name=split,
        station_ids=station_ids,
        ends=np.concatenate(ends),
        raw=raw,
        x=scalers.transform_windows(station_ids.tolist(), raw),
        labels=np.asarray(step_labels.any(axis=1), dtype=np.int8),
        step_labels=step_labels.astype(np.int8),
        rows=rows,
        anomalous_rows=anomalous,
        skipped=skipped,
        events=events,
    )


def prepare(
    dataset: Dataset,
    *,
    window: int = 30,
    step: int = 5,
    train_ratio: float = 0.6,
    val_ratio: float = 0.2,
    bounds: SplitBounds | None = None,
) -> Prepared:
    """Split chronologically, fit the scalers on normal training rows, cut and scale every split."""
    spec = window_spec(dataset, window, step)
    bounds = bounds or chronological_bounds(dataset, train_ratio, val_ratio)
    scalers = fit_scalers(dataset, bounds)
    splits = {name: cut_windows(dataset, bounds, name, spec, scalers) for name in SPLITS}
    for name, purpose in (("train", "to learn from"), ("validation", "to calibrate on")):
        if not (splits[name].labels == 0).any():
            lines = "; ".join(
                _lines(part) for s in dataset.stations.values() if len(part := split_station(s, bounds, name))
            )
            raise DataError(
                f"{dataset.source}, {lines}, column 'label': the {name} split has no normal window {purpose}"
            )
    return Prepared(dataset.sensors, spec, scalers, bounds, splits)
