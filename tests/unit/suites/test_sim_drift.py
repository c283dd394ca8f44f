"""The drift block: incident lengths against the maximum, thefts after a drift blocked or not."""

from __future__ import annotations

from datetime import timedelta

from evaluation.suites.sim_drift import drift_figures, incident_spans, pool
from evaluation.suites.sim_events import TruthEvent
from tests.unit.suites.test_sim_segments import at, station_alert, tap_alert, theft

TWELVE_HOURS = timedelta(hours=12)


def drift(event_id: str, station: str, start: int, end: int) -> TruthEvent:
    return TruthEvent(event_id, "sensor_fault", "drift", (station,), at(start), at(end), sensor="flow")


def test_incidents_span_from_their_first_to_their_last_alert_in_any_order() -> None:
    alerts = [station_alert("s1", "EST-01", 900), station_alert("s1", "EST-01", 100), tap_alert("t1", 50)]
    spans = {s.incident_id: s for s in incident_spans(alerts)}
    assert spans["s1"].hours == (900 - 100) / 60 and spans["t1"].kind == "tap"


def test_a_theft_after_a_drift_is_blocked_by_a_station_incident_open_since_before_it() -> None:
    events = [
        drift("D1", "EST-01", 0, 600),
        theft("T-blocked", 700, 760, 0.05),  # EST-01 still in the incident opened at 650
        theft("T-free", 2000, 2060, 0.05),  # that incident ended at 1200
        theft("T-before", 10, 60, 0.05),  # started before the drift ended: not counted
    ]
    alerts = [station_alert("s1", "EST-01", 650), station_alert("s1", "EST-01", 1200)]
    figures = drift_figures(events, alerts, {"T-free": True}, TWELVE_HOURS)
    assert figures["extractions_after_drift"] == 2
    assert figures["blocked"] == ["T-blocked"] and figures["caught"] == 1
    assert figures["station_incidents_over_max"] == 0


def test_a_meter_fault_on_the_segment_blocks_and_an_overlong_incident_misses_the_target() -> None:
    events = [drift("D1", "EST-02", 0, 60), theft("T1", 500, 560, 0.05)]
    alerts = [
        tap_alert("m1", 400, kind="meter_fault", sensor="flow", station="EST-02"),
        tap_alert("m1", 900, kind="meter_fault", sensor="flow", station="EST-02", status="close"),
        station_alert("long", "EST-03", 0),
        station_alert("long", "EST-03", 13 * 60),
    ]
    figures = drift_figures(events, alerts, {}, TWELVE_HOURS)
    assert figures["blocked_at_start"] == 1 and figures["station_incidents_over_max"] == 1
    pooled = pool([figures, drift_figures([], [], {}, TWELVE_HOURS)])
    assert pooled["met"] is False and pooled["longest_station_incident_hours"] == 13.0
    assert pool([drift_figures(events, [], {}, TWELVE_HOURS)])["met"] is True
