from __future__ import annotations

from datetime import timedelta

import numpy as np

from trainer.data import StationSeries
from trainer.metrics import event_metrics
from trainer.prepare import Event, WindowSet, find_events

STEP = timedelta(minutes=5)
LENGTH = timedelta(minutes=10)
T0 = np.datetime64("2025-01-01T00:10")


def window_set(labels: list[int], events: list[Event]) -> WindowSet:
    n = len(labels)
    return WindowSet(
        name="test",
        station_ids=np.full(n, "EST-01"),
        ends=T0 + np.arange(n) * np.timedelta64(STEP),
        raw=np.zeros((n, 2, 1), np.float32),
        x=np.zeros((n, 2, 1), np.float32),
        labels=np.asarray(labels, np.int8),
        step_labels=np.zeros((n, 2), np.int8),
        rows=n,
        anomalous_rows=0,
        skipped=0,
        events=events,
    )


def event_at(index: int) -> Event:
    """An event whose labelled samples lie inside window ``index`` only (windows are 10 min, step 5)."""
    end = T0 + index * np.timedelta64(STEP)
    return Event("EST-01", end - np.timedelta64(3, "m"), end - np.timedelta64(1, "m"))


def test_an_alarm_already_on_does_not_catch_the_event() -> None:
    labels = [0, 0, 0, 0, 1, 1, 0, 0]
    windows = window_set(labels, [event_at(4)])
    # The alarm rose at window 2 (normal) and stayed on through the event: not a catch.
    on_before = np.array([0, 0, 1, 1, 1, 1, 0, 0], bool)
    result = event_metrics(windows, on_before, LENGTH, STEP)
    assert result["caught"] == 0 and result["already_alarming"] == 1
    # Raised inside the event: caught, and the run touching it is no false alarm.
    raised = np.array([0, 0, 0, 0, 1, 1, 0, 0], bool)
    result = event_metrics(windows, raised, LENGTH, STEP)
    assert result["caught"] == 1 and result["already_alarming"] == 0 and result["false_alarms"] == 0


def test_false_alarms_per_station_month() -> None:
    labels = [0] * 20
    alarms = np.zeros(20, bool)
    alarms[[2, 3, 9, 15]] = True  # three runs
    result = event_metrics(window_set(labels, []), alarms, LENGTH, STEP)
    assert result["false_alarms"] == 3
    months = 20 * STEP / timedelta(days=30)
    assert result["false_alarms_per_station_month"] == 3 / months


def test_events_cut_by_a_split_are_marked() -> None:
    ts = np.datetime64("2025-01-01T00:00") + np.arange(10) * np.timedelta64(1, "m")
    labels = np.array([0, 0, 0, 1, 1, 1, 0, 0, 1, 0], np.int8)
    whole = StationSeries("EST-01", ts, np.zeros((10, 1)), labels, np.arange(10) + 2)
    first_part = whole.select(np.arange(10) < 5)  # the split cuts the first event after its 2nd row
    events = find_events(first_part, whole)
    assert [e.cut_by_split for e in events] == [True]
    assert [e.cut_by_split for e in find_events(whole.select(np.arange(10) >= 5), whole)] == [True, False]
    assert [e.cut_by_split for e in find_events(whole, whole)] == [False, False]
