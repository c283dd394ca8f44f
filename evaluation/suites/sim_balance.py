"""A reference detector for the sim suite: the segment's flow balance, the classic API RP 1130 method.

Not the service: the service scores each station on its own sensors, and this asks what the same
measured readings allow when the two ends of a segment are compared. Per segment, every 5 minutes:
the 30-minute mean of the level-compensated imbalance minus its median over the 6 h ending 1 h
earlier (a slow baseline that absorbs meter bias and drift). The threshold is the alarm budget of
the training period (its largest value clear of any tap), and alarms go through the same
``IncidentTracker`` as the service's, so the same join and figures apply.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from simulator.result import SimulationResult

MEAN_MINUTES = 30
STEP_MINUTES = 5
BASELINE_MINUTES = 360
BASELINE_GAP_MINUTES = 60
RECOVERY_MINUTES = 90
MODEL_VERSION = "flow-balance-reference"


def balance_statistic(imbalance: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per minute: the 30-min mean of the balance minus its baseline (NaN where too little data)."""
    import pandas as pd

    series = pd.Series(imbalance)
    mean = series.rolling(MEAN_MINUTES, min_periods=MEAN_MINUTES * 2 // 3).mean()
    baseline = (
        series.rolling(BASELINE_MINUTES, min_periods=BASELINE_MINUTES // 3)
        .median()
        .shift(MEAN_MINUTES + BASELINE_GAP_MINUTES)
    )
    return np.asarray((mean - baseline).to_numpy(), dtype=np.float64)


def _tapped(result: SimulationResult, segment: int, minutes: int) -> npt.NDArray[np.bool_]:
    """Minutes of a theft or leak on ``segment``, plus the recovery after it."""
    mask = np.zeros(minutes, dtype=bool)
    for event in result.events:
        if event.event_type in ("theft", "leak") and event.segment == segment:
            mask[event.start : min(minutes, event.end + RECOVERY_MINUTES)] = True
    return mask


def run_reference(result: SimulationResult, test_start: int) -> tuple[list[dict[str, Any]], float]:
    """Alerts (as the alerts topic's JSON) of the balance detector on the test period, and its threshold."""
    from detector.clock import ManualClock
    from detector.incidents import IncidentTracker, WindowVerdict

    minutes = len(result.times)
    ends = np.arange(STEP_MINUTES, minutes + 1, STEP_MINUTES)  # window [end - 30, end) on the 5-min grid
    segments = len(result.station_ids) - 1
    statistics = [balance_statistic(result.segment_imbalance(s))[ends - 1] for s in range(segments)]
    clear_train: list[npt.NDArray[np.float64]] = []
    for s in range(segments):
        tapped = _tapped(result, s, minutes)[ends - 1]
        keep = (ends <= test_start) & ~tapped & np.isfinite(statistics[s])
        clear_train.append(statistics[s][keep])
    pooled = np.concatenate(clear_train)
    threshold = float(pooled.max()) if pooled.size else float("inf")

    start = np.datetime64(result.times[0], "us").astype(datetime).replace(tzinfo=UTC)
    tracker = IncidentTracker(clock=ManualClock(start))  # emitted_at: the data's start, not the wall
    alerts: list[dict[str, Any]] = []
    in_test = ends > test_start + MEAN_MINUTES
    for index in np.flatnonzero(in_test):
        end = start + timedelta(minutes=int(ends[index]))
        for s in range(segments):
            value = float(statistics[s][index])
            if not np.isfinite(value):
                continue
            # Attributed to the segment's downstream station, where the tap's flow goes missing.
            station = result.station_ids[s + 1]
            start_of_mean = end - timedelta(minutes=MEAN_MINUTES)
            verdict = WindowVerdict(
                station, start_of_mean, end, threshold, MODEL_VERSION, max(value, 0.0), {"flow_balance": 1.0}
            )
            for alert in tracker.observe(verdict):
                alerts.append(alert.model_dump(mode="json", by_alias=True))
    return alerts, threshold
