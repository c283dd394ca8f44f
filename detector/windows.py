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

import functools
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


@dataclass(frozen=True, slots=True)
class _Geometry:
    """A spec's numbers as plain ints, computed once per spec and shared by every buffer."""

    spec: WindowSpec
    sampling_us: int
    half_us: int
    steps: int
    step: int
    fill: int
    lateness: int
    ring: int
    min_samples: int
    offsets: npt.NDArray[np.int64]  # slots a window reads, relative to its end: -(T + fill) .. -1


@functools.lru_cache(maxsize=64)
def _geometry(spec: WindowSpec) -> _Geometry:
    sampling_us = _micros(spec.sampling)
    reach = spec.samples_per_window + spec.fill_slots
    return _Geometry(
        spec=spec,
        sampling_us=sampling_us,
        half_us=sampling_us // 2,
        steps=spec.samples_per_window,
        step=spec.step_slots,
        fill=spec.fill_slots,
        lateness=spec.lateness_slots,
        ring=reach + spec.lateness_slots + 1,
        min_samples=spec.min_samples,
        offsets=np.arange(-reach, 0, dtype=np.int64),
    )


class StationBuffer:
    """One station's recent samples in a fixed ring; closes windows as its watermark passes their end.

    The ring holds ``length + max_fill + allowed_lateness`` slots (plus one): enough for every window
    not yet closed and the samples that may fill its first slots, so memory depends on the window,
    not on history. ``add`` cuts, before writing, any window the new watermark makes final; those
    wait until ``close_until`` (or ``take_ready``) hands them out.
    """

    __slots__ = (
        "_closed_wm",
        "_geo",
        "_max_empty",
        "_newest",
        "_next_end",
        "_origin",
        "_pending",
        "_skip_gaps",
        "_skipped",
        "_skipped_after",
        "_stamps",
        "_values",
    )

    def __init__(self, spec: WindowSpec, n_sensors: int, max_gap_windows: int | None = None) -> None:
        """``max_gap_windows``: at most this many windows without a single sample are cut per gap
        (after the station's newest sample); the rest of a longer gap is skipped and counted
        (``take_skipped``). None cuts every window, as batch does."""
        geo = _geometry(spec)
        self._geo = geo
        if max_gap_windows is not None and max_gap_windows < 1:
            raise ConfigError(f"max_gap_windows must be at least 1, got {max_gap_windows}")
        self._max_empty = max_gap_windows
        self._skipped = 0  # windows skipped since take_skipped
        self._skip_gaps = 0  # gaps that began skipping since take_skipped
        self._skipped_after: int | None = None  # the newest slot before the gap skipped last
        self._values = np.zeros((geo.ring, n_sensors), dtype=np.float32)
        self._stamps = np.full(geo.ring, _EMPTY, dtype=np.int64)
        self._origin: int | None = None
        self._newest: int | None = None
        self._next_end: int | None = None
        self._closed_wm = _EMPTY
        self._pending: list[ClosedWindow] | None = None

    @property
    def spec(self) -> WindowSpec:
        return self._geo.spec

    @property
    def watermark(self) -> datetime | None:
        """Newest event time minus the allowed lateness (or the latest ``close_until``, if later)."""
        slot = self._watermark_slot()
        return None if slot == _EMPTY else self._time_of(slot)

    @property
    def newest(self) -> datetime | None:
        return None if self._newest is None else self._time_of(self._newest)

    @property
    def ready(self) -> bool:
        """Whether windows made final by the station's own watermark wait to be taken."""
        return self._pending is not None

    def _time_of(self, slot: int) -> datetime:
        return EPOCH + timedelta(microseconds=slot * self._geo.sampling_us)

    def _watermark_slot(self) -> int:
        if self._newest is None:
            return self._closed_wm
        own = self._newest - self._geo.lateness
        return own if own > self._closed_wm else self._closed_wm

    def add(self, ts: datetime, values: npt.ArrayLike) -> AddOutcome:
        """Place one sample; ``late`` if older than the watermark, ``duplicate`` if its slot is taken."""
        geo = self._geo
        slot = ((ts - EPOCH) // _ONE_US + geo.half_us) // geo.sampling_us
        newest = self._newest
        if slot < self._closed_wm or (newest is not None and slot < newest - geo.lateness):
            return AddOutcome.LATE
        position = slot % geo.ring
        stamps = self._stamps
        if stamps[position] == slot:
            return AddOutcome.DUPLICATE
        if newest is None or slot > newest:
            next_end = self._next_end
            if next_end is None or slot - geo.lateness >= next_end:
                self._materialize(slot - geo.lateness)
            self._newest = slot
        if self._origin is None or (self._next_end is None and slot < self._origin):
            self._origin = slot
        self._values[position] = values
        stamps[position] = slot
        return AddOutcome.ACCEPTED

    def take_ready(self) -> list[ClosedWindow]:
        """The windows ``add`` made final: ``close_until(self.watermark)`` without the conversions."""
        ready = self._pending
        if ready is None:
            return []
        self._pending = None
        return ready

    def close_until(self, watermark: datetime) -> list[ClosedWindow]:
        """Every window with ``end <= watermark`` not handed out before, oldest first."""
        geo = self._geo
        # Floor, not nearest: a watermark between grid points only closes windows ending at or before it.
        limit = ((watermark - EPOCH) // _ONE_US) // geo.sampling_us
        self._closed_wm = max(self._closed_wm, limit)
        self._materialize(limit)
        return self._take_pending(limit)

    def flush(self) -> list[ClosedWindow]:
        """Close every window whose last slot has been seen (end of a finite series, as in batch)."""
        if self._newest is None:
            return []
        return self.close_until(self._time_of(self._newest + 1))

    def take_skipped(self) -> tuple[int, int]:
        """Since the last call: windows skipped (never cut) because a gap outgrew ``max_gap_windows``,
        and how many gaps that was (a silent station's gap skips a little at each idle close, but
        is one gap)."""
        taken = (self._skipped, self._skip_gaps)
        self._skipped = self._skip_gaps = 0
        return taken

    def _take_pending(self, limit: int) -> list[ClosedWindow]:
        pending = self._pending
        if pending is None:
            return []
        limit_time = self._time_of(limit)
        if pending[-1].end <= limit_time:
            self._pending = None
            return pending
        ready = [window for window in pending if window.end <= limit_time]
        self._pending = pending[len(ready) :]
        return ready

    def _materialize(self, limit: int) -> None:
        """Cut every window ending at or before slot ``limit`` into ``pending``."""
        if self._origin is None:
            return
        geo = self._geo
        if self._next_end is None:
            first = geo.spec.first_end(self._origin)
            if limit < first:
                return
            self._next_end = first
        stop = limit
        if self._max_empty is not None and self._newest is not None:
            # A window ending past newest + T + max_fill reads no sample at all: it can only be a gap.
            # Cutting all of them let one year-old first reading open 105,000 windows; a gap needs a
            # few to be reported, the rest is skipped.
            stop = min(limit, self._newest + geo.steps + geo.fill + self._max_empty * geo.step)
        while self._next_end <= stop:
            window = self._cut(self._next_end)
            if self._pending is None:
                self._pending = [window]
            else:
                self._pending.append(window)
            self._next_end += geo.step
        if self._next_end <= limit:
            skipped = (limit - self._next_end) // geo.step + 1
            self._skipped += skipped
            self._next_end += skipped * geo.step
            if self._skipped_after != self._newest:
                self._skipped_after = self._newest
                self._skip_gaps += 1

    def _cut(self, end: int) -> ClosedWindow:
        geo = self._geo
        wanted = geo.offsets + end
        positions = wanted % geo.ring
        present = self._stamps[positions] == wanted
        end_time = self._time_of(end)
        if int(np.count_nonzero(present[geo.fill :])) < geo.min_samples:
            return ClosedWindow(end_time, None, INSUFFICIENT_DATA)
        source, filled = _fill_forward(present, geo.fill)
        if not filled[geo.fill :].all():
            return ClosedWindow(end_time, None, GAP_TOO_LONG)
        return ClosedWindow(end_time, self._values[positions[source[geo.fill :]]], None)
