from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pytest

from detector.clock import ManualClock
from detector.errors import ConfigError
from replay.pacing import Pacer, parse_speed

SECOND = 10**9


def play(
    pacer: Pacer, clock: ManualClock, event_ns: np.ndarray, cost_per_release_s: float = 0.0
) -> list[tuple[float, int]]:
    """Release ``event_ns`` the way the replay loop does; returns (time, index) of each release.
    Time moves only when the loop waits (each wait overshoots by 1 ms, as real sleeps do) and by a
    fixed cost per release."""
    schedule = pacer.schedule(event_ns)
    released: list[tuple[float, int]] = []
    start = 0
    while start < len(schedule):
        due = pacer.due(schedule, start)
        if due.stop == start:
            clock.advance(min(due.wait_s, 0.1) + 0.001)
            continue
        released.extend((clock.monotonic(), i) for i in range(start, due.stop))
        clock.advance(cost_per_release_s)
        start = due.stop
    return released


def test_an_hour_at_60x_takes_a_minute_without_drift() -> None:
    clock = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
    pacer = Pacer(60.0, clock)
    event_ns = np.arange(3601, dtype=np.int64) * SECOND  # an hour of one-second readings
    released = play(pacer, clock, event_ns, cost_per_release_s=0.0003)
    assert len(released) == len(event_ns)
    elapsed = released[-1][0] - released[0][0]
    assert elapsed == pytest.approx(60.0, abs=0.01)
    # Each reading leaves within one wake-up of its deadline, never early by more than the granularity.
    for at, index in released:
        deadline = released[0][0] + index / 60.0
        assert deadline - pacer.granularity_s - 1e-9 <= at <= deadline + 0.002


def test_schedule_is_the_running_maximum_across_batches() -> None:
    pacer = Pacer(10.0, ManualClock(datetime(2025, 1, 1, tzinfo=UTC)))
    assert pacer.schedule(np.array([5, 3, 7, 6], dtype=np.int64)).tolist() == [5, 5, 7, 7]
    assert pacer.schedule(np.array([4, 9], dtype=np.int64)).tolist() == [7, 9]


def test_max_speed_releases_everything_at_once() -> None:
    pacer = Pacer(None, ManualClock(datetime(2025, 1, 1, tzinfo=UTC)))
    schedule = pacer.schedule(np.arange(10, dtype=np.int64) * 3600 * SECOND)
    due = pacer.due(schedule, 0)
    assert (due.stop, due.wait_s) == (10, 0.0)


def test_wait_is_the_time_to_the_next_deadline() -> None:
    clock = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
    pacer = Pacer(2.0, clock)
    schedule = pacer.schedule(np.array([0, 10 * SECOND], dtype=np.int64))
    assert pacer.due(schedule, 0).stop == 1
    due = pacer.due(schedule, 1)
    assert due.stop == 1
    assert due.wait_s == pytest.approx(5.0)


def test_real_clock_keeps_time() -> None:
    pacer = Pacer(20.0)
    event_ns = np.arange(0, 6 * SECOND + 1, SECOND // 10, dtype=np.int64)  # 6 s of data -> 0.3 s
    schedule = pacer.schedule(event_ns)
    began = time.monotonic()
    start = 0
    while start < len(schedule):
        due = pacer.due(schedule, start)
        if due.stop == start:
            time.sleep(due.wait_s)
            continue
        start = due.stop
    assert time.monotonic() - began == pytest.approx(0.3, abs=0.05)


@pytest.mark.parametrize(("text", "speed"), [("max", None), ("60", 60.0), ("60x", 60.0), ("0.5", 0.5)])
def test_parse_speed(text: str, speed: float | None) -> None:
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["-1", "fast", "inf60"])
def test_parse_speed_refuses_nonsense(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_speed(text)
