"""Incidents that end: a drifting station is not stuck in one incident, and a later event is raised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detector.errors import ConfigError
from detector.incidents import Alert, IncidentPolicy, IncidentTracker, WindowVerdict

T0 = datetime(2025, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)
PER_HOUR = 12
SHARES = {"flow": 0.7, "pressure": 0.3}


def feed(tracker: IncidentTracker, scores: list[float], start: int = 0) -> list[Alert]:
    alerts: list[Alert] = []
    for i, score in enumerate(scores, start=start):
        end = T0 + i * STEP
        window = WindowVerdict("EST-01", end - timedelta(minutes=30), end, 1.0, "v1", score, SHARES)
        alerts += tracker.observe(window)
    return alerts


def drift_then_event() -> list[float]:
    """Normal for a day, drifted to 3x the threshold for three weeks, a 1-hour event at 10x on day 9."""
    scores = [0.3] * (24 * PER_HOUR) + [3.0] * (21 * 24 * PER_HOUR)
    event = 9 * 24 * PER_HOUR
    scores[event : event + PER_HOUR] = [10.0] * PER_HOUR
    return scores


def test_a_drifting_station_is_never_in_one_incident_longer_than_the_maximum() -> None:
    tracker = IncidentTracker(IncidentPolicy(max_length=timedelta(hours=12)))
    alerts = feed(tracker, drift_then_event())
    opened = {a.incident_id: a.window_end for a in alerts if a.status == "open"}
    closed = {a.incident_id: a for a in alerts if a.status == "close"}
    assert set(closed) <= set(opened)
    lengths = [closed[i].window_end - opened[i] for i in closed]
    assert lengths and max(lengths) <= timedelta(hours=12)
    assert {closed[i].reason for i in closed} == {"max_length"}
    # The drift alone re-opens nothing once re-armed above it: two incidents, not one per 12 h.
    assert len(opened) == 2


def test_an_event_after_the_drift_is_raised_as_a_new_incident() -> None:
    tracker = IncidentTracker(IncidentPolicy(max_length=timedelta(hours=12)))
    alerts = feed(tracker, drift_then_event())
    event_start = T0 + 9 * 24 * PER_HOUR * STEP
    raised = [a for a in alerts if a.status == "open" and a.window_end >= event_start]
    assert raised and raised[0].window_end == event_start
    assert raised[0].reason == "above_drift_level" and raised[0].severity == "high"


def test_without_a_maximum_the_drift_holds_one_incident_and_hides_the_event() -> None:
    tracker = IncidentTracker(IncidentPolicy(max_length=None))
    alerts = feed(tracker, drift_then_event())
    assert [a.status for a in alerts if a.status != "update"] == ["open"]


def test_the_raised_level_is_dropped_once_the_station_is_quiet() -> None:
    tracker = IncidentTracker(IncidentPolicy(max_length=timedelta(hours=1)))
    scores = [3.0] * (PER_HOUR + 1) + [0.2, 0.2] + [1.2]
    alerts = feed(tracker, scores)
    assert [(a.status, a.reason) for a in alerts if a.status != "update"] == [
        ("open", None),
        ("close", "max_length"),
        ("open", None),
    ]


def test_state_round_trips_the_rearm_level_and_reads_old_snapshots() -> None:
    tracker = IncidentTracker(IncidentPolicy(max_length=timedelta(hours=1)))
    feed(tracker, [3.0] * (PER_HOUR + 1))
    snapshot = tracker.snapshot()
    assert snapshot["stations"]["EST-01"]["rearm_level"] == pytest.approx(4.5)
    again = IncidentTracker(IncidentPolicy(max_length=timedelta(hours=1)))
    again.restore(snapshot)
    assert feed(again, [3.0], start=PER_HOUR + 1) == []  # still below the re-arm level
    old = {"version": 1, "stations": {"EST-01": {"recent": 0, "incident": None, "gap": None}}}
    again.restore(old)
    assert again.snapshot()["stations"]["EST-01"]["rearm_level"] is None


def test_bad_maximum_or_margin_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_length"):
        IncidentPolicy(max_length=timedelta(0))
    with pytest.raises(ConfigError, match="rearm_margin"):
        IncidentPolicy(rearm_margin=0.5)
