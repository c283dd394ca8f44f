"""When each reading is due, from the file's own timestamps, against a monotonic clock.

Every reading has an absolute deadline, ``origin + (event_time - first_event_time) / speed``, fixed
when the first reading is released. The replay loop asks which readings are due now and, when none
is, how long to wait: sleeping per row would add each sleep's overshoot to the next and drift, while
absolute deadlines keep the error of the whole run to one wake-up's lateness.

Event times that go backwards (an unsorted file) are due at once: the schedule is the running
maximum of event time, so the clock never has to wait for the past.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detector.clock import SYSTEM_CLOCK, MonotonicClock
from detector.errors import ConfigError

_NS = 1_000_000_000
# Readings due within this much of now go together: waking for every reading at 10,000 readings per
# second of wall time would cost more than it is worth, and 2 ms is far inside the ±2 % promise.
DEFAULT_GRANULARITY_S = 0.002


@dataclass(frozen=True)
class Due:
    """Readings ``[start, stop)`` may go now; when ``stop == start`` wait ``wait_s`` first."""

    stop: int
    wait_s: float


def parse_speed(text: str) -> float | None:
    """``"max"`` (None: as fast as possible) or a positive factor such as ``"60"`` or ``"60x"``."""
    cleaned = text.strip().lower()
    if cleaned == "max":
        return None
    cleaned = cleaned.removesuffix("x")
    try:
        speed = float(cleaned)
    except ValueError:
        raise ConfigError(f"speed must be 'max' or a positive number, got {text!r}") from None
    if not speed > 0 or speed == float("inf"):
        raise ConfigError(f"speed must be 'max' or a positive number, got {text!r}")
    return speed


class Pacer:
    """Holds the origin of a run; ``speed=None`` releases everything at once."""

    def __init__(
        self,
        speed: float | None,
        clock: MonotonicClock = SYSTEM_CLOCK,
        granularity_s: float = DEFAULT_GRANULARITY_S,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ConfigError("speed must be positive")
        self.speed = speed
        self.clock = clock
        self.granularity_s = granularity_s
        self._origin_event_ns: int | None = None
        self._origin_s = 0.0
        self._high_water_ns: int | None = None

    @property
    def started(self) -> bool:
        return self._origin_event_ns is not None

    def schedule(self, event_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The non-decreasing schedule of a batch (running maximum, carried across batches)."""
        if len(event_ns) == 0:
            return event_ns.astype(np.int64)
        schedule = np.maximum.accumulate(event_ns.astype(np.int64))
        if self._high_water_ns is not None:
            schedule = np.maximum(schedule, self._high_water_ns)
        self._high_water_ns = int(schedule[-1])
        return schedule

    def deadline(self, event_ns: int) -> float:
        """Clock time at which a reading with this (scheduled) event time is due."""
        if self.speed is None or self._origin_event_ns is None:
            return self._origin_s
        return self._origin_s + (event_ns - self._origin_event_ns) / _NS / self.speed

    def due(self, schedule: npt.NDArray[np.int64], start: int) -> Due:
        """How many of ``schedule[start:]`` are due now (``schedule`` comes from ``schedule()``)."""
        n = len(schedule)
        if start >= n:
            return Due(n, 0.0)
        if self.speed is None:
            return Due(n, 0.0)
        now = self.clock.monotonic()
        if self._origin_event_ns is None:
            self._origin_event_ns = int(schedule[start])
            self._origin_s = now
        horizon_s = now + self.granularity_s - self._origin_s
        horizon_ns = self._origin_event_ns + int(horizon_s * self.speed * _NS)
        stop = int(np.searchsorted(schedule, horizon_ns, side="right"))
        if stop > start:
            return Due(stop, 0.0)
        return Due(start, max(0.0, self.deadline(int(schedule[start])) - now))
