"""The sim suite's rules: incidents from alerts, the event join, band figures, estimates, thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from evaluation.suites import sim_events
from evaluation.suites.sim import budget_threshold
from evaluation.suites.sim_estimate import estimate_extraction
from evaluation.suites.sim_events import TruthEvent, fold_incidents, join

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def alert(
    station: str,
    end_minute: int,
    *,
    incident: str,
    status: str = "open",
    kind: str = "incident",
    score: float | None = 2.0,
    top: tuple[str, float] = ("flow", 0.4),
) -> dict[str, Any]:
    return {
        "incident_id": incident,
        "kind": kind,
        "status": status,
        "station_id": station,
        "window_start": at(end_minute - 30).isoformat().replace("+00:00", "Z"),
        "window_end": at(end_minute - 0).isoformat().replace("+00:00", "Z"),
        "score": score,
        "threshold": 1.0,
        "contributions": [{"sensor": top[0], "share": top[1]}],
    }


def theft(
    event_id: str, start: int, end: int, size: float, stations: tuple[str, ...] = ("A", "B")
) -> TruthEvent:
    return TruthEvent(event_id, "theft", "tap", stations, at(start), at(end), magnitude=size, segment=0)


def test_alerts_fold_into_incidents_opening_at_their_first_window_end() -> None:
    alerts = [
        alert("A", 100, incident="i1", status="close"),
        alert("A", 60, incident="i1"),
        alert("A", 80, incident="i1", status="update", score=5.0, top=("pressure", 0.9)),
        alert("B", 70, incident="g1", kind="data_gap", score=None),
    ]
    incidents = {i.incident_id: i for i in fold_incidents(alerts)}
    first = incidents["i1"]
    assert first.opened_at == at(60)
    assert first.window_start == at(30)
    assert first.last_window_end == at(100)
    assert first.closed
    assert (first.top_sensor, first.top_share, first.peak_ratio) == ("pressure", 0.9, 5.0)
    assert not incidents["g1"].closed
    assert incidents["g1"].span(at(500)) == (at(40), at(500))


def test_a_theft_is_caught_by_an_alarm_on_its_stations_up_to_the_grace_hour_after_its_end() -> None:
    events = [theft("T1", 100, 130, 0.03), theft("T2", 1000, 1020, 0.08), theft("T3", 2000, 2030, 0.01)]
    alerts = [
        alert("B", 115, incident="a"),  # inside T1: caught after 15 min
        alert("A", 1080, incident="b"),  # 60 min after T2's end: still caught
        alert("A", 2095, incident="c"),  # 65 min after T3's end: too late, a false alarm
    ]
    result = join(events, fold_incidents(alerts), at(3000))
    by_id = {r["event_id"]: r for r in result.events}
    assert by_id["T1"]["caught"] and by_id["T1"]["minutes_to_alarm"] == 15
    assert by_id["T1"]["band"] == "2-5"
    assert by_id["T2"]["caught"] and by_id["T2"]["minutes_to_alarm"] == 80
    assert not by_id["T3"]["caught"]
    assert [f["incident_id"] for f in result.false_alarms] == ["c"]


def test_an_alarm_open_before_the_theft_does_not_count_as_catching_it() -> None:
    result = join([theft("T1", 100, 130, 0.03)], fold_incidents([alert("A", 90, incident="x")]), at(500))
    assert not result.events[0]["caught"]
    assert len(result.false_alarms) == 1


def test_false_alarms_are_classified_by_what_was_under_way_when_they_opened() -> None:
    events = [
        theft("T1", 100, 130, 0.03, stations=("A", "B")),
        TruthEvent("F1", "sensor_fault", "stuck", ("C",), at(400), at(500), sensor="pressure"),
        TruthEvent("S1", "transient", "setpoint_change", ("A", "B", "C"), at(800), at(860)),
        TruthEvent("M1", "maintenance", "line_slowdown", ("A", "B", "C"), at(1200), at(1400)),
    ]
    alerts = [
        alert("C", 120, incident="elsewhere"),
        alert("C", 450, incident="fault", top=("pressure", 0.8)),
        alert("A", 830, incident="transient"),
        alert("B", 1300, incident="maintenance"),
        alert("B", 1700, incident="nothing"),
        alert("C", 420, incident="gap", kind="data_gap", score=None),
    ]
    result = join(events, fold_incidents(alerts), at(3000))
    causes = {f["incident_id"]: f["cause"] for f in result.false_alarms}
    assert causes == {
        "elsewhere": "theft_elsewhere",
        "fault": "sensor_fault",
        "transient": "transient",
        "maintenance": "maintenance",
        "nothing": "unexplained",
    }
    (fault,) = result.faults
    assert fault["data_gap_alarms"] == 1
    assert fault["anomaly_alarms"] == 1
    assert fault["anomaly_alarms_reading_as_sensor_trouble"] == 1
    assert fault["anomaly_alarms_naming_the_faulty_sensor"] == 1


def test_band_figures_count_rates_and_delays_per_band() -> None:
    records = [
        {"event_type": "theft", "band": "5-15", "caught": True, "minutes_to_alarm": 10.0, "magnitude": 0.06},
        {"event_type": "theft", "band": "5-15", "caught": True, "minutes_to_alarm": 20.0, "magnitude": 0.1},
        {"event_type": "theft", "band": "1-2", "caught": False, "minutes_to_alarm": None, "magnitude": 0.015},
        {"event_type": "leak", "band": "1-2", "caught": True, "minutes_to_alarm": 99.0, "magnitude": 0.015},
    ]
    figures = sim_events.band_figures(records)
    assert figures["rate"] == {"0.5-1": None, "1-2": 0.0, "2-5": None, "5-15": 1.0}
    assert figures["median"]["5-15"] == pytest.approx(15.0)
    assert figures["p90"]["5-15"] == pytest.approx(19.0)
    assert figures["counts"]["1-2"] == {"events": 1, "caught": 0}
    assert sim_events.rate_at_least(records, 0.02) == (1.0, 2)


def test_smallest_tap_detected_90pct_is_the_smallest_size_whose_tail_is_caught_90pct() -> None:
    sizes = [0.006, 0.008, 0.012, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.12]
    caught = [False, True, False, True, True, True, True, True, True, True, True]
    records = [
        {"event_type": "theft", "magnitude": s, "caught": c} for s, c in zip(sizes, caught, strict=True)
    ]
    assert sim_events.smallest_detected(records) == 0.02
    assert sim_events.smallest_detected([{"event_type": "theft", "magnitude": 0.1, "caught": False}]) is None
    two_caught = [{"event_type": "theft", "magnitude": s, "caught": True} for s in (0.1, 0.12)]
    assert sim_events.smallest_detected(two_caught) is None  # too few to say "90 % of the time"
    assert sim_events.band_of(0.15) == "5-15"
    assert sim_events.band_of(0.004) is None


def test_extraction_estimate_removes_the_baseline_and_integrates_the_excess() -> None:
    imbalance = np.full(2000, 1.5)
    imbalance[1000:1120] += 25.0  # a 25 m3/h tap for two hours
    imbalance[1050] = np.nan  # a dropout inside it
    estimate = estimate_extraction(imbalance, 1000, 1120)
    assert estimate is not None
    assert estimate.baseline_m3h == pytest.approx(1.5)
    assert estimate.rate_m3h == pytest.approx(25.0)
    assert estimate.volume_m3 == pytest.approx(50.0)
    assert estimate_extraction(imbalance, 10, 10) is None


def test_budget_threshold_ignores_tapped_windows_and_their_recovery() -> None:
    ends = (np.datetime64("2025-01-01T00:00") + np.arange(40) * np.timedelta64(5, "m")).astype(
        "datetime64[ns]"
    )
    stations = np.array(["A"] * 20 + ["B"] * 20)
    ends = np.concatenate([ends[:20], ends[:20]])
    scores = np.ones(40)
    labels = np.zeros(40, dtype=np.int8)
    labels[5] = 1
    scores[5] = 50.0  # the tap itself
    scores[8] = 30.0  # 15 min after it on the same station: recovery
    scores[30] = 3.0  # station B, clear: the largest clear score
    assert budget_threshold(scores, labels, stations, ends) == 3.0
    # A spike of a known sensor fault on station B (window 38 ends at 01:30) would set it alone.
    scores[38] = 99.0
    assert budget_threshold(scores, labels, stations, ends) == 99.0
    fault = ("B", np.datetime64("2025-01-01T01:20", "ns"), np.datetime64("2025-01-01T01:25", "ns"))
    assert budget_threshold(scores, labels, stations, ends, [fault]) == 3.0
    assert budget_threshold(scores, labels, stations, ends, [("A", fault[1], fault[2])]) == 99.0


def test_balance_statistic_is_the_recent_mean_above_a_lagged_baseline() -> None:
    from evaluation.suites.sim_balance import BASELINE_GAP_MINUTES, MEAN_MINUTES, balance_statistic

    imbalance = np.full(1000, 2.0)  # a meter bias the baseline removes
    imbalance[700:] += 20.0  # a tap opening at minute 700
    statistic = balance_statistic(imbalance)
    assert np.isnan(statistic[:100]).all()  # no baseline yet
    assert statistic[650] == pytest.approx(0.0)
    assert statistic[700 + MEAN_MINUTES - 1] == pytest.approx(20.0)  # the whole mean window is tapped
    # The baseline lags by the mean window plus the gap, so it has not absorbed the tap yet.
    assert statistic[700 + MEAN_MINUTES + BASELINE_GAP_MINUTES] == pytest.approx(20.0)
