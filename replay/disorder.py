"""Seeded disorder for robustness tests: drop, duplicate and shuffle readings within a time span.

Applied to each block in this order: drop (each row with probability ``drop_rate``), duplicate (each
surviving row gets a second copy with probability ``duplicate_rate``), shuffle. Shuffling gives
every row a delay drawn uniformly from ``[0, shuffle_within)`` and sorts by event time plus delay:
a reading then arrives after readings at most ``shuffle_within`` newer than it, never more, so a
consumer whose allowed lateness is at least that span sees no late reading. The delayed time is
also the row's schedule for pacing (it arrives late in wall time too).

Rows only move inside a block (tens of thousands of rows), which is far longer than any useful span.
The same seed and blocks give the same output.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from detector.errors import ConfigError


@dataclass(frozen=True)
class DisorderOptions:
    shuffle_within: timedelta = timedelta(0)
    duplicate_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.shuffle_within < timedelta(0):
            raise ConfigError("shuffle-within must not be negative")
        for name, rate in (("duplicate-rate", self.duplicate_rate), ("drop-rate", self.drop_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1], got {rate}")

    @property
    def active(self) -> bool:
        return self.shuffle_within > timedelta(0) or self.duplicate_rate > 0 or self.drop_rate > 0


@dataclass(frozen=True)
class Disordered:
    """Which rows to send, in which order, and when (event-time schedule, non-decreasing)."""

    index: npt.NDArray[np.intp]
    schedule_ns: npt.NDArray[np.int64]
    dropped: int
    duplicated: int


class Disorder:
    """Stateful over a run: one random stream for every block, from the seed."""

    def __init__(self, options: DisorderOptions) -> None:
        self.options = options
        self._rng = np.random.default_rng(options.seed)
        self._shuffle_ns = int(options.shuffle_within / timedelta(microseconds=1)) * 1000

    def apply(self, ts_ns: npt.NDArray[np.int64]) -> Disordered:
        n = len(ts_ns)
        index = np.arange(n, dtype=np.intp)
        dropped = duplicated = 0
        if self.options.drop_rate > 0:
            keep = self._rng.random(n) >= self.options.drop_rate
            dropped = n - int(keep.sum())
            index = index[keep]
        if self.options.duplicate_rate > 0:
            copies = 1 + (self._rng.random(len(index)) < self.options.duplicate_rate)
            duplicated = int(copies.sum()) - len(index)
            index = np.repeat(index, copies)
        schedule = ts_ns[index]
        if self._shuffle_ns > 0:
            delay = self._rng.integers(0, self._shuffle_ns, size=len(index), dtype=np.int64)
            schedule = schedule + delay
            order = np.argsort(schedule, kind="stable")
            index = index[order]
            schedule = schedule[order]
        return Disordered(index=index, schedule_ns=schedule, dropped=dropped, duplicated=duplicated)
