"""From labelled rows to scaled windows per split: the one place the trainer cuts windows.

Windows come from ``detector.windows.batch_windows``, the function the service's buffers match,
so the model is trained on exactly what it will be served. Scalers are fitted per station on the
normal rows of the training span only (labelled rows would stretch the scale and hide anomalies).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from detector.errors import ConfigError, DataError
from detector.scaling import Scaler, StationScalers
from detector.windows import WindowSpec, batch_windows
from trainer.data import UNKNOWN_LABEL, Dataset, StationSeries
from trainer.split import SPLITS, SplitBounds, chronological_bounds, split_station

log = logging.getLogger(__name__)

# A sensor whose training readings repeat the previous one this often is frozen (stuck, or a
# communication link that repeats the last value): it carries no information and is dropped.
FROZEN_SHARE = 0.95
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Event:
    """A contiguous run of labelled samples of one station: one anomaly as an operator sees it."""

    station_id: str
    start: np.datetime64
    end: np.datetime64  # last labelled sample
    # Labelled rows continue across a split boundary: this split holds only part of the event.
    cut_by_split: bool = False


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

    @property
    def known(self) -> npt.NDArray[np.bool_]:
        """Windows whose label is known (no unknown sample, or an anomalous one): the metrics' windows."""
        return np.asarray(self.labels != UNKNOWN_LABEL)

    def summary(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "anomalous_rows": self.anomalous_rows,
            "windows": len(self),
            "anomalous_windows": int((self.labels == 1).sum()),
            "unknown_windows": int((self.labels == UNKNOWN_LABEL).sum()),
            "skipped_windows": self.skipped,
            "events": len(self.events),
            "events_cut_by_split": sum(1 for event in self.events if event.cut_by_split),
        }


@dataclass(frozen=True)
class Prepared:
    sensors: tuple[str, ...]
    spec: WindowSpec
    scalers: StationScalers
    bounds: SplitBounds
    splits: dict[str, WindowSet]
    # Sensors left out of the model, each with the reason (frozen, constant, never read).
    dropped_sensors: dict[str, str] = field(default_factory=dict)
    # What the preparation had to work around, one clear line each (also in the report).
    notes: list[str] = field(default_factory=list)

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


def sampling_note(dataset: Dataset, sampling: timedelta) -> str | None:
    """A line when rows are not regular at the inferred period (missing rows or mixed sampling)."""
    gaps = np.concatenate([np.diff(series.ts) for series in dataset.stations.values()])
    off = gaps != np.timedelta64(sampling)
    if not off.any():
        return None
    longest = timedelta(seconds=float(gaps.max() / np.timedelta64(1, "s")))
    return (
        f"sampling period {sampling} inferred (the most common gap between rows); {int(off.sum())} of "
        f"{len(gaps)} gaps differ from it (longest {longest}): windows over them are filled or skipped "
        "by the service's coverage rules"
    )


def samples_of(value: int | str, sampling: timedelta, flag: str) -> int:
    """A length as samples: a plain integer counts samples (as before), a duration (``30min``,
    ``5 s``, ``2h``, ``1d``) must be a whole number of sampling periods."""
    if isinstance(value, int) or str(value).strip().isdigit():
        return int(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ConfigError(
            f"{flag} must be a number of samples or a duration such as 30min, 90s, 2h; got {value!r}"
        )
    duration = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    samples = duration / sampling
    if abs(samples - round(samples)) > 1e-9:
        raise ConfigError(
            f"{flag} {value} is not a whole number of samples at the data's sampling period of "
            f"{sampling} (inferred from the most common gap between rows)"
        )
    return round(samples)


def window_spec(
    dataset: Dataset, window: int | str, step: int | str, sampling: timedelta | None = None
) -> WindowSpec:
    """Window and step in samples (a plain integer) or as durations (``30min``), checked against the
    sampling period inferred from the data."""
    period = sampling or infer_sampling(dataset)
    length, stride = samples_of(window, period, "--window"), samples_of(step, period, "--step")
    if length < 2 or stride < 1:
        raise ConfigError(
            f"--window must be at least 2 and --step at least 1 samples, got {length}, {stride} "
            f"(sampling {period})"
        )
    # The live coverage rules in sampling periods: fill at most 5 minutes' worth, at least one sample.
    fill = max(1, round(timedelta(minutes=5) / period)) * period
    lateness = max(1, round(timedelta(minutes=2) / period)) * period
    return WindowSpec(
        length=period * length,
        step=period * stride,
        sampling=period,
        max_fill=fill,
        allowed_lateness=lateness,
    )


def find_events(series: StationSeries, whole: StationSeries | None = None) -> list[Event]:
    """Contiguous labelled samples (consecutive rows) make one event.

    ``whole``: the station's full series when ``series`` is one split of it; an event whose labelled
    rows continue into the neighbouring split is marked ``cut_by_split``.
    """
    flagged = series.labels == 1
    if not flagged.any():
        return []
    edges = np.diff(np.concatenate(([0], flagged.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1) - 1
    events = []
    for a, b in zip(starts, stops, strict=True):
        cut = False
        if whole is not None:
            first = int(np.searchsorted(whole.ts, series.ts[a]))
            last = int(np.searchsorted(whole.ts, series.ts[b]))
            before = a == 0 and first > 0 and whole.labels[first - 1] == 1
            after = b == len(series) - 1 and last + 1 < len(whole) and whole.labels[last + 1] == 1
            cut = bool(before or after)
        events.append(Event(series.station_id, series.ts[a], series.ts[b], cut))
    return events


def fit_scalers(dataset: Dataset, bounds: SplitBounds, notes: list[str] | None = None) -> StationScalers:
    """Per station, mean and scale of the normal, complete training rows (each station its own normal
    level); the fallback pools every station's. A station without two such rows is scaled with the
    fallback (said in ``notes``); only a file where no station has any is refused."""
    per_station: dict[str, Scaler] = {}
    pooled: list[npt.NDArray[np.float64]] = []
    lacking: list[str] = []
    for station, series in dataset.stations.items():
        train = split_station(series, bounds, "train")
        normal = train.values[train.labels == 0]
        normal = normal[np.isfinite(normal).all(axis=1)]
        if len(normal) < 2:
            span = _lines(train) if len(train) else "no rows"
            lacking.append(f"{station!r} ({span}, {len(normal)} normal complete rows)")
            continue
        per_station[station] = Scaler.fit(normal)
        pooled.append(normal)
    if not pooled:
        raise DataError(
            f"{dataset.source}, column 'label': no station has 2 normal complete rows in the training "
            f"split to fit a scaler on: {', '.join(lacking)}"
        )
    if lacking:
        line = (
            f"scaled with the pooled scaler of the other stations (too few normal training rows): "
            f"{', '.join(lacking)}"
        )
        log.warning("%s", line)
        if notes is not None:
            notes.append(line)
    return StationScalers(per_station=per_station, fallback=Scaler.fit(np.concatenate(pooled)))


def unusable_sensors(dataset: Dataset, bounds: SplitBounds) -> dict[str, str]:
    """Sensors that carry no information in some station's training rows, with the reason: never
    read, constant, or frozen (the same reading repeated in at least ``FROZEN_SHARE`` of steps)."""
    found: dict[str, str] = {}
    for station, series in dataset.stations.items():
        train = split_station(series, bounds, "train")
        for j, sensor in enumerate(dataset.sensors):
            if sensor in found:
                continue
            values = train.values[:, j]
            values = values[np.isfinite(values)]
            if len(values) < 2:
                found[sensor] = f"no readings in the training split of station {station!r}"
            elif np.ptp(values) == 0:
                found[sensor] = f"constant ({values[0]:g}) in the training split of station {station!r}"
            else:
                repeated = float(np.mean(np.diff(values) == 0))
                if repeated >= FROZEN_SHARE:
                    found[sensor] = (
                        f"frozen: {100 * repeated:.0f} % of consecutive training readings of station "
                        f"{station!r} repeat the previous one"
                    )
    return found


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
        anomalous += int((part.labels == 1).sum())
        if not len(part):
            continue
        events.extend(find_events(part, series))
        # The labels ride along as one more column, so each window also carries its per-step labels.
        stacked = np.column_stack([part.values, part.labels.astype(np.float64)])
        batch = batch_windows(part.ts, stacked, spec)
        skipped += len(batch.skipped)
        ids.append(np.full(len(batch.ends), station))
        ends.append(batch.ends)
        raws.append(batch.data[:, :, :S])
        steps.append(batch.data[:, :, S])
    raw = np.concatenate(raws) if raws else np.empty((0, T, S), np.float32)
    step_values = np.concatenate(steps) if steps else np.empty((0, T), np.float32)
    step_labels = step_values > 0.5
    # A window is anomalous if any sample is; else unknown if any sample's label is unknown.
    window_labels = np.where(
        step_labels.any(axis=1), 1, np.where((step_values < -0.5).any(axis=1), UNKNOWN_LABEL, 0)
    )
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
        labels=np.asarray(window_labels, dtype=np.int8),
        step_labels=step_labels.astype(np.int8),
        rows=rows,
        anomalous_rows=anomalous,
        skipped=skipped,
        events=events,
    )


def prepare(
    dataset: Dataset,
    *,
    window: int | str = 30,
    step: int | str = 5,
    train_ratio: float = 0.6,
    val_ratio: float = 0.2,
    bounds: SplitBounds | None = None,
) -> Prepared:
    """Split chronologically, drop sensors without information, fit the scalers on normal training
    rows, cut and scale every split."""
    spec = window_spec(dataset, window, step)
    bounds = bounds or chronological_bounds(dataset, train_ratio, val_ratio)
    notes: list[str] = []
    irregular = sampling_note(dataset, spec.sampling)
    if irregular:
        notes.append(irregular)
    dropped = unusable_sensors(dataset, bounds)
    for sensor, reason in dropped.items():
        line = f"sensor {sensor!r} dropped: {reason}"
        log.warning("%s", line)
        notes.append(line)
    if len(dropped) == len(dataset.sensors):
        raise DataError(f"{dataset.source}: every sensor was dropped ({'; '.join(notes)})")
    if dropped:
        dataset = dataset.with_sensors([s for s in dataset.sensors if s not in dropped])
    scalers = fit_scalers(dataset, bounds, notes)
    splits = {name: cut_windows(dataset, bounds, name, spec, scalers) for name in SPLITS}
    for name, purpose in (("train", "to learn from"), ("validation", "to calibrate on")):
        if not (splits[name].labels == 0).any():
            lines = "; ".join(
                _lines(part) for s in dataset.stations.values() if len(part := split_station(s, bounds, name))
            )
            raise DataError(
                f"{dataset.source}, {lines}, column 'label': the {name} split has no normal window {purpose}"
            )
    return Prepared(dataset.sensors, spec, scalers, bounds, splits, dropped, notes)
