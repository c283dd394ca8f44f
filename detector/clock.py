"""Time, injectable: wall time to stamp and compare with readings, monotonic seconds to measure waits.

Two protocols rather than one clock class family, because the two answer different questions and
must not stand in for each other: wall time can jump (NTP, a VM resumed), so it never measures an
interval; monotonic time has no epoch, so it never stamps anything. A consumer names the one it
needs (``WallClock``: alerts' ``emitted_at``, the station watermark against a reading's ``ts``;
``MonotonicClock``: reload intervals, outage limits, replay pacing) and the type checker keeps the
two apart. Both implementations satisfy both protocols: ``SystemClock`` reads the OS, and
``ManualClock`` moves only when told, its wall and monotonic views together, so a test advances one
clock and every view of time moves as real time would.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol


class WallClock(Protocol):
    def now(self) -> datetime:
        """The current time, an aware UTC datetime."""
        ...


class MonotonicClock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes back."""
        ...


class SystemClock:
    """The operating system's clocks (``datetime.now(UTC)``, ``time.monotonic()``); stateless."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK: Final = SystemClock()


class ManualClock:
    """A clock that moves only when told: tests, and offline runs that want a fixed ``emitted_at``.

    ``now()`` starts at ``start`` (aware), ``monotonic()`` at 0; ``advance(seconds)`` moves both.
    Safe to advance from a test thread while the service reads it.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError(f"ManualClock needs an aware start, got the naive {start.isoformat()}")
        self._start = start.astimezone(UTC)
        self._elapsed_s = 0.0
        self._lock = threading.Lock()

    @classmethod
    def at_unix(cls, seconds: float) -> ManualClock:
        """A clock starting at ``seconds`` since the Unix epoch."""
        return cls(datetime.fromtimestamp(seconds, UTC))

    def now(self) -> datetime:
        with self._lock:
            return self._start + timedelta(seconds=self._elapsed_s)

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed_s

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds`` (finite, not negative: a monotonic clock never goes back)."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"ManualClock.advance needs finite seconds >= 0, got {seconds!r}")
        with self._lock:
            self._elapsed_s += seconds
