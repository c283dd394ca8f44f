"""Event-time windows: one definition, cut in batch by the trainer and in a stream by the service.

A window is the half-open span ``[end - length, end)`` with ``end`` on the UTC grid of ``step``.
Samples are snapped to the nearest point of the ``sampling`` grid (a reading at 00:00:59.8 is the
00:01 sample); a window holds ``samples_per_window`` slots. Rules, identical on both sides:

- Candidate windows start at the station's first sample: the first end is the first grid point with
  ``end - length >= first sample``. Nothing before the first sample is invented.
- The last candidate in a batch is the last grid end whose final slot is at or before the last sample;
  the stream closes a window once its watermark reaches ``end``.
- A slot without a sample takes the most recent earlier sample at most ``max_fill`` old (which may lie
  before the window's start); otherwise it stays empty.
- A window with fewer real samples than ``min_coverage`` of its slots is skipped as
  ``insufficient_data``; one with enough samples but a slot left empty is skipped as ``gap_too_long``.
- Several samples in one slot: the first one (in input or arrival order) wins, the rest are duplicates.
- Rows with a non-finite value are treated as absent (the stream never sees them: the parser refuses them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from detector.errors import ConfigError, DataError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_NS_PER_US = 1000

INSUFFICIENT_DATA = "insufficient_data"
GAP_TOO_LONG = "gap_too_long"
SKIP_REASONS: tuple[str, ...] = (INSUFFICIENT_DATA, GAP_TOO_LONG)

FloatArray = npt.NDArray[np.float32]


def _micros(delta: timedelta) -> int:
    return delta // _ONE_US


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Window geometry in event time; every span is a whole number of ``sampling`` periods."""

    length: timedelta = timedelta(minutes=30)
    step: timedelta = timedelta(minutes=5)
    sampling: timedelta = timedelta(minutes=1)
    max_fill: timedelta = timedelta(minutes=5)
    min_coverage: float = 0.8
    allowed_lateness: timedelta = timedelta(minutes=2)

    def __post_init__(self) -> None:
        sampling = _micros(self.sampling)
        if sampling <= 0:
            raise ConfigError(f"window sampling must be positive, got {self.sampling}")
        for name in ("length", "step", "max_fill", "allowed_lateness"):
            value = _micros(getattr(self, name))
            if value < 0 or value % sampling:
                raise ConfigError(
                    f"window {name} must be a non-negative multiple of sampling ({self.sampling})"
                )
        if _micros(self.length) == 0 or _micros(self.step) == 0:
            raise ConfigError("window length and step must be positive")
        if not 0.0 < self.min_coverage <= 1.0:
            raise ConfigError(f"window min_coverage must be in (0, 1], got {self.min_coverage}")

    @property
    def samples_per_window(self) -> int:
        return self.length // self.sampling

    @property
    def step_slots(self) -> int:
        return self.step // self.sampling

    @property
    def fill_slots(self) -> int:
        return self.max_fill // self.sampling

    @property
    def lateness_slots(self) -> int:
        return self.allowed_lateness // self.sampling

    @property
    def min_samples(self) -> int:
        """Real samples a window needs (the epsilon keeps 0.8 × 30 at 24, not 25)."""
        return math.ceil(self.min_coverage * self.samples_per_window - 1e-9)

    def slot_of(self, ts: datetime) -> int:
        """Index of the sampling-grid point nearest to ``ts`` (aware), counted from the Unix epoch."""
        sampling = _micros(self.sampling)
        return (_micros(ts - EPOCH) + sampling // 2) // sampling

    def time_of(self, slot: int) -> datetime:
        return EPOCH + self.sampling * slot

    def first_end(self, first_slot: int) -> int:
        """Slot index of the first window end at or after ``first_slot + samples_per_window``."""
        step = self.step_slots
        return -((-(first_slot + self.samples_per_window)) // step) * step

    def to_seconds(self) -> dict[str, float]:
        """The manifest's form: spans in seconds, coverage as a fraction."""
        return {
            "length": self.length.total_seconds(),
            "step": self.step.total_seconds(),
            "sampling": self.sampling.total_seconds(),
            "max_fill": self.max_fill.total_seconds(),
            "min_coverage": self.min_coverage,
            "allowed_lateness": self.allowed_lateness.total_seconds(),
        }

    @classmethod
    def from_seconds(cls, fields: dict[str, float]) -> WindowSpec:
        default = cls()
        return cls(
            length=timedelta(seconds=fields.get("length", default.length.total_seconds())),
            step=timedelta(seconds=fields.get("step", default.step.total_seconds())),
            sampling=timedelta(seconds=fields.get("sampling", default.sampling.total_seconds())),
            max_fill=timedelta(seconds=fields.get("max_fill", default.max_fill.total_seconds())),
            min_coverage=float(fields.get("min_coverage", default.min_coverage)),
            allowed_lateness=timedelta(
                seconds=fields.get("allowed_lateness", default.allowed_lateness.total_seconds())
            ),
        )


@dataclass(frozen=True, slots=True)
class SkippedWindow:
    end: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class WindowBatch:
    """Windows cut from one station's series: ``data[i]`` is the window ending at ``ends[i]``."""

    ends: npt.NDArray[np.datetime64]
    data: FloatArray
    labels: npt.NDArray[np.int8] | None
    skipped: list[SkippedWindow]


def _fill_forward(
    present: npt.NDArray[np.bool_], fill_slots: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """For each slot, the index of the sample that fills it, and whether one within reach exists."""
    positions = np.arange(len(present))
    source = np.maximum.accumulate(np.where(present, positions, -1))
    filled = (source >= 0) & (positions - source <= fill_slots)
    return np.maximum(source, 0), filled


def _slots_from_datetime64(ts: npt.NDArray[np.datetime64], spec: WindowSpec) -> npt.NDArray[np.int64]:
    ns = ts.astype("datetime64[ns]").astype(np.int64)
    sampling_ns = _micros(spec.sampling) * _NS_PER_US
    return (ns + sampling_ns // 2) // sampling_ns


def batch_windows(
    ts: npt.NDArray[np.datetime64],
    values: npt.ArrayLike,
    spec: WindowSpec,
    labels: npt.ArrayLike | None = None,
) -> WindowBatch:
    """Cut every window of one station's series (vectorised; rows in any order, first duplicate wins)."""
    X = np.asarray(values, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(ts):
        raise DataError(f"values must be (n, sensors) with n = len(ts) = {len(ts)}, got {X.shape}")
    n_sensors = X.shape[1]
    T = spec.samples_per_window
    empty = WindowBatch(
        ends=np.empty(0, dtype="datetime64[ns]"),
        data=np.empty((0, T, n_sensors), dtype=np.float32),
        labels=None if labels is None else np.empty(0, dtype=np.int8),
        skipped=[],
    )
    slots = _slots_from_datetime64(np.asarray(ts), spec)
    usable = np.isfinite(X).all(axis=1) & ~np.isnat(np.asarray(ts))
    if not usable.any():
        return empty
    use_idx = np.flatnonzero(usable)
    order = use_idx[np.argsort(slots[use_idx], kind="stable")]
    sorted_slots = slots[order]
    first_of_slot = np.ones(len(order), dtype=bool)
    first_of_slot[1:] = sorted_slots[1:] != sorted_slots[:-1]
    kept = order[first_of_slot]
    kept_slots = slots[kept]
    origin = int(kept_slots[0])
    last = int(kept_slots[-1])

    first_end = spec.first_end(origin)
    last_end = ((last + 1) // spec.step_slots) * spec.step_slots
    if last_end < first_end:
        return empty
    ends_slots = np.arange(first_end, last_end + 1, spec.step_slots, dtype=np.int64)

    grid_len = last - origin + 1
    dense = np.zeros((grid_len, n_sensors), dtype=np.float32)
    present = np.zeros(grid_len, dtype=bool)
    dense[kept_slots - origin] = X[kept]
    present[kept_slots - origin] = True
    source, filled = _fill_forward(present, spec.fill_slots)
    dense = dense[source]

    def per_window_count(flags: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        cumulative = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
        stops = ends_slots - origin
        return cumulative[stops] - cumulative[stops - T]

    real = per_window_count(present)
    unfilled = per_window_count(~filled)
    short = real < spec.min_samples
    gappy = ~short & (unfilled > 0)
    good = ~short & ~gappy

    starts = ends_slots[good] - T - origin
    data = np.lib.stride_tricks.sliding_window_view(dense, T, axis=0)[starts]
    data = np.ascontiguousarray(np.swapaxes(data, 1, 2), dtype=np.float32)

    window_labels: npt.NDArray[np.int8] | None = None
    if labels is not None:
        flags = np.asarray(labels).astype(np.float64)
        if flags.shape != (len(ts),):
            raise DataError(f"labels must be ({len(ts)},), got {flags.shape}")
        labelled = np.zeros(grid_len, dtype=bool)
        in_grid = usable & (slots >= origin) & (slots <= last)
        hits = slots[in_grid & (np.nan_to_num(flags) > 0)] - origin
        labelled[hits] = True
        window_labels = (per_window_count(labelled)[good] > 0).astype(np.int8)

    skipped = [
        SkippedWindow(spec.time_of(int(end)), INSUFFICIENT_DATA if is_short else GAP_TOO_LONG)
        for end, is_short in zip(ends_slots[~good], short[~good], strict=True)
    ]
    return WindowBatch(
        ends=(ends_slots[good] * (_micros(spec.sampling) * _NS_PER_US)).astype("datetime64[ns]"),
        data=data,
        labels=window_labels,
        skipped=skipped,
    )


class AddOutcome(StrEnum):
    ACCEPTED = "accepted"
    LATE = "late"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A window the stream has closed: ``data`` (T, S) when scorable, else ``skip_reason``."""

    end: datetime
    data: FloatArray | None
    skip_reason: str | None


_EMPTY = np.iinfo(np.int64).min


class StationBuffer:
    """One station's recent samples in a fixed ring; closes windows as its watermark passes their end.

    The ring holds ``length + max_fill + allowed_lateness`` slots (plus one): enough for every window
    not yet closed and the samples that may fill its first slots, so memory depends on the window,
    not on history. ``add`` closes, before writing, any window the new watermark makes final; those
    wait in ``pending`` until ``close_until`` hands them out.
    """

    __slots__ = ("_closed_wm", "_newest", "_next_end", "_origin", "_pending", "_stamps", "_values", "spec")

    def __init__(self, spec: WindowSpec, n_sensors: int) -> None:
        self.spec = spec
        size = spec.samples_per_window + spec.fill_slots + spec.lateness_slots + 1
        self._values = np.zeros((size, n_sensors), dtype=np.float32)
        self._stamps = np.full(size, _EMPTY, dtype=np.int64)
        self._origin: int | None = None
        self._newest: int | None = None
        self._next_end: int | None = None
        self._closed_wm = _EMPTY
        self._pending: list[ClosedWindow] | None = None

    @property
    def watermark(self) -> datetime | None:
        """Newest event time minus the allowed lateness (or the latest ``close_until``, if later)."""
        slot = self._watermark_slot()
        return None if slot == _EMPTY else self.spec.time_of(slot)

    @property
    def newest(self) -> datetime | None:
        return None if self._newest is None else self.spec.time_of(self._newest)

    def _watermark_slot(self) -> int:
        own = _EMPTY if self._newest is None else self._newest - self.spec.lateness_slots
        return max(own, self._closed_wm)

    def add(self, ts: datetime, values: npt.ArrayLike) -> AddOutcome:
        """Place one sample; ``late`` if older than the watermark, ``duplicate`` if its slot is taken."""
        slot = self.spec.slot_of(ts)
        if slot < self._watermark_slot():
            return AddOutcome.LATE
        ring = len(self._stamps)
        position = slot % ring
        if self._stamps[position] == slot:
            return AddOutcome.DUPLICATE
        if self._newest is None or slot > self._newest:
            self._materialize(slot - self.spec.lateness_slots)
            self._newest = slot
        if self._origin is None or (self._next_end is None and slot < self._origin):
            self._origin = slot
        self._values[position] = values
        self._stamps[position] = slot
        return AddOutcome.ACCEPTED

    def close_until(self, watermark: datetime) -> list[ClosedWindow]:
        """Every window with ``end <= watermark`` not handed out before, oldest first."""
        limit = self.spec.slot_of(watermark)
        # Snap down: a watermark between grid points only closes windows ending at or before it.
        if self.spec.time_of(limit) > watermark:
            limit -= 1
        self._closed_wm = max(self._closed_wm, limit)
        self._materialize(limit)
        return self._take_pending(limit)

    def flush(self) -> list[ClosedWindow]:
        """Close every window whose last slot has been seen (end of a finite series, as in batch)."""
        if self._newest is None:
            return []
        return self.close_until(self.spec.time_of(self._newest + 1))

    def _take_pending(self, limit: int) -> list[ClosedWindow]:
        if not self._pending:
            return []
        limit_time = self.spec.time_of(limit)
        ready = [window for window in self._pending if window.end <= limit_time]
        rest = self._pending[len(ready) :]
        self._pending = rest or None
        return ready

    def _materialize(self, limit: int) -> None:
        """Cut every window ending at or before slot ``limit`` into ``pending``."""
        if self._origin is None:
            return
        if self._next_end is None:
            first = self.spec.first_end(self._origin)
            if limit < first:
                return
            self._next_end = first
        while self._next_end <= limit:
            window = self._cut(self._next_end)
            if self._pending is None:
                self._pending = [window]
            else:
                self._pending.append(window)
            self._next_end += self.spec.step_slots

    def _cut(self, end: int) -> ClosedWindow:
        spec = self.spec
        T = spec.samples_per_window
        reach = T + spec.fill_slots
        wanted = np.arange(end - reach, end, dtype=np.int64)
        positions = wanted % len(self._stamps)
        present = self._stamps[positions] == wanted
        end_time = spec.time_of(end)
        real = int(np.count_nonzero(present[-T:]))
        if real < spec.min_samples:
            return ClosedWindow(end_time, None, INSUFFICIENT_DATA)
        source, filled = _fill_forward(present, spec.fill_slots)
        if not filled[-T:].all():
            return ClosedWindow(end_time, None, GAP_TOO_LONG)
        data = self._values[positions[source[-T:]]]
        return ClosedWindow(end_time, data, None)
