"""The line-aware sim suite's rules: tap incidents against the thefts of their segment, false alarms
by cause, station incidents in the service's totals, meter faults, estimate errors and targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from evaluation.suites import sim_segments
from evaluation.suites.sim_events import TruthEvent
from evaluation.suites.sim_segments import (
    Tally,
    fold_segment_incidents,
    fold_station_incidents,
    join_segments,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SEG = "EST-01>EST-02"
OTHER = "EST-02>EST-03"
LENGTHS = {SEG: 50.0, OTHER: 40.0}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(minutes: float) -> str:
    return at(minutes).isoformat().replace("+00:00", "Z")


def tap_alert(
    incident: str,
    minute: int,
    *,
    status: str = "open",
    segment: str = SEG,
    volume: float | None = 10.0,
    location: float | None = 20.0,
    kind: str = "tap",
    sensor: str | None = None,
    station: str | None = None,
    related: list[str] | None = None,
) -> dict[str, Any]:
    upstream, downstream = segment.split(">")
    alert: dict[str, Any] = {
        "incident_id": incident,
        "kind": kind,
        "status": status,
        "station_id": station or upstream,
        "window_start": iso(minute - 10),
        "window_end": iso(minute),
        "score": 8.0,
        "threshold": 4.0,
        "segment": {
            "line_id": "L1",
            "segment_id": segment,
            "upstream": upstream,
            "downstream": downstream,
            "length_km": LENGTHS[segment],
        },
        "sensor": sensor,
        "related": related or [],
    }
    if volume is not None:
        alert["estimate"] = {
            "rate_m3h": 30.0,
            "volume_m3": volume,
            "location_km": location,
            "location_sigma_km": 5.0,
            "onset": iso(minute - 10),
        }
    return alert


def station_alert(
    incident: str, station: str, minute: int, related: list[str] | None = None
) -> dict[str, Any]:
    return {
        "incident_id": incident,
        "kind": "incident",
        "status": "open",
        "station_id": station,
        "window_start": iso(minute - 30),
        "window_end": iso(minute),
        "score": 2.0,
        "threshold": 1.0,
        "related": related or [],
    }


def theft(
    event_id: str,
    start: int,
    end: int,
    size: float,
    *,
    segment: str = SEG,
    volume: float = 10.0,
    position: float = 0.5,
    kind: str = "theft",
) -> TruthEvent:
    return TruthEvent(
        event_id,
        kind,
        "tap",
        tuple(segment.split(">")),
        at(start),
        at(end),
        magnitude=size,
        segment=0,
        volume_m3=volume,
        true_rate_m3h=20.0,
        segment_id=segment,
        position=position,
    )


def other(
    event_type: str, stations: tuple[str, ...], start: int, end: int, sensor: str | None = None
) -> TruthEvent:
    return TruthEvent(f"{event_type}-{start}", event_type, "x", stations, at(start), at(end), sensor=sensor)


def judge(events: list[TruthEvent], alerts: list[dict[str, Any]]) -> sim_segments.SegmentJoin:
    return join_segments(events, fold_segment_incidents(alerts), fold_station_incidents(alerts), LENGTHS)


def test_segment_alerts_fold_with_the_estimate_of_their_last_alert() -> None:
    alerts = [
        tap_alert("t1", 130, status="close", volume=12.0, location=22.0),
        tap_alert("t1", 100, volume=2.0, location=30.0),
        tap_alert("t1", 115, status="update", volume=6.0, location=25.0),
        station_alert("s1", "EST-01", 90),
    ]
    (incident,) = fold_segment_incidents(alerts)
    assert incident.opened_at == at(100) and incident.closed and incident.alerts == 3
    assert incident.segment_id == SEG and incident.stations == ("EST-01", "EST-02")
    assert incident.estimate_at_open is not None and incident.estimate_at_open["volume_m3"] == 2.0
    assert incident.estimate is not None and incident.estimate["volume_m3"] == 12.0
    assert [s.incident_id for s in fold_station_incidents(alerts)] == ["s1"]


def test_a_tap_is_caught_only_by_an_incident_on_its_own_segment_opening_in_its_span_or_grace_hour() -> None:
    events = [
        theft("T1", 100, 160, 0.03),
        theft("T2", 1000, 1020, 0.08),
        theft("T3", 2000, 2030, 0.01),
        theft("T4", 3000, 3100, 0.06),
    ]
    alerts = [
        tap_alert("a", 112),  # T1 after 12 min
        tap_alert("b", 1080),  # exactly 60 min after T2's end: caught
        tap_alert("c", 2091),  # 61 min after T3's end: too late, false alarm
        tap_alert("d", 3010, segment=OTHER),  # the wrong segment: T4 missed
    ]
    joined = judge(events, alerts)
    by_id = {r["event_id"]: r for r in joined.events}
    assert by_id["T1"]["caught"] and by_id["T1"]["minutes_to_alarm"] == 12 and by_id["T1"]["band"] == "2-5"
    assert by_id["T2"]["caught"] and by_id["T2"]["minutes_to_alarm"] == 80
    assert not by_id["T3"]["caught"] and by_id["T3"]["minutes_to_alarm"] is None
    assert not by_id["T4"]["caught"]
    causes = {f["incident_id"]: f["cause"] for f in joined.false_alarms}
    assert causes == {"c": "unexplained", "d": "theft_elsewhere"}


def test_an_incident_open_before_the_tap_starts_does_not_catch_it() -> None:
    joined = judge(
        [theft("T1", 100, 200, 0.05)], [tap_alert("early", 90), tap_alert("early", 150, status="update")]
    )
    assert not joined.events[0]["caught"]
    assert [f["incident_id"] for f in joined.false_alarms] == ["early"]


def test_location_and_volume_errors_use_the_segment_length_and_the_true_volume() -> None:
    # True location 0.3 × 50 km = 15 km; estimate 20 km → 10 % of the segment. Volume 12 vs 10 → 20 %.
    events = [theft("T1", 100, 200, 0.05, volume=10.0, position=0.3)]
    alerts = [
        tap_alert("a", 110, volume=3.0, location=40.0),
        tap_alert("a", 230, status="close", volume=12.0),
    ]
    record = judge(events, alerts).events[0]
    assert record["true_location_km"] == pytest.approx(15.0)
    assert record["location_error_pct_of_segment"] == pytest.approx(10.0)
    assert record["volume_error_pct"] == pytest.approx(20.0)
    assert record["volume_band"] == ">=8"


def test_tap_false_alarms_are_classified_by_what_was_under_way_on_their_stations() -> None:
    events = [
        other("sensor_fault", ("EST-02",), 100, 130, sensor="flow"),
        other("maintenance", ("EST-01", "EST-02", "EST-03"), 500, 600),
        other("transient", ("EST-03",), 1000, 1010),  # not a station of SEG
        other("transient", ("EST-01",), 2000, 2010),
    ]
    alerts = [tap_alert("f", 120), tap_alert("m", 550), tap_alert("u", 1020), tap_alert("t", 2065)]
    causes = {f["incident_id"]: f["cause"] for f in judge(events, alerts).false_alarms}
    assert causes == {"f": "sensor_fault", "m": "maintenance", "u": "unexplained", "t": "transient"}


def test_station_incidents_count_unless_linked_or_part_of_a_tap_on_their_station() -> None:
    events = [theft("T1", 100, 200, 0.05), other("sensor_fault", ("EST-03",), 1000, 1100, sensor="power")]
    alerts = [
        tap_alert("tap", 110, related=["s-linked-by-tap"]),
        station_alert("s-linked-by-tap", "EST-02", 115),
        station_alert("s-links-tap", "EST-01", 120, related=["tap"]),
        station_alert("s-same", "EST-02", 250),  # within T1's grace hour, on its station
        station_alert("s-fault", "EST-03", 1050),
        station_alert("s-free", "EST-03", 5000),
    ]
    causes = {s["incident_id"]: s["cause"] for s in judge(events, alerts).station_incidents}
    assert causes == {
        "s-linked-by-tap": "linked",
        "s-links-tap": "linked",
        "s-same": "same_event",
        "s-fault": "sensor_fault",
        "s-free": "unexplained",
    }


def test_meter_faults_must_be_reported_on_the_right_station_and_sensor() -> None:
    events = [
        other("sensor_fault", ("EST-02",), 100, 200, sensor="flow"),
        other("sensor_fault", ("EST-01",), 1000, 1100, sensor="tank_level"),
        other("sensor_fault", ("EST-01",), 3000, 3100, sensor="power"),  # not a meter: not judged
    ]
    alerts = [
        tap_alert("m1", 130, kind="meter_fault", sensor="flow", station="EST-02", volume=None),
        tap_alert(
            "m2", 1020, kind="meter_fault", sensor="flow", station="EST-01", volume=None
        ),  # wrong sensor
        tap_alert("m3", 5000, kind="meter_fault", sensor="flow", station="EST-01", volume=None),
        tap_alert("t", 1030),
    ]
    joined = judge(events, alerts)
    by_id = {f["event_id"]: f for f in joined.meter_faults}
    assert set(by_id) == {"sensor_fault-100", "sensor_fault-1000"}
    assert by_id["sensor_fault-100"]["reported"] and by_id["sensor_fault-100"]["minutes_to_report"] == 30
    assert not by_id["sensor_fault-1000"]["reported"]
    assert by_id["sensor_fault-1000"]["tap_alarms_during"] == 1
    assert [m["incident_id"] for m in joined.spurious_meter_faults] == ["m3"]


def test_targets_count_the_right_thefts_and_say_whether_each_is_met() -> None:
    events = [
        theft("big-long", 0, 100, 0.05, volume=20.0),
        theft("big-short", 1000, 1020, 0.03, volume=2.0),
        theft("small", 2000, 2300, 0.01, volume=9.0),
        theft("leak", 3000, 4000, 0.01, volume=30.0, kind="leak"),
    ]
    alerts = [tap_alert("a", 10, volume=20.0, location=25.0), tap_alert("b", 1030, volume=3.0, location=25.0)]
    tally = Tally.of(judge(events, alerts), station_months=2.0)
    figures = sim_segments.figures(tally)
    goals = figures["targets"]
    assert set(goals) == set(sim_segments.TARGETS)
    assert goals["taps_ge_2pct_detected"] == {"value": 1.0, "target": 0.85, "met": True}
    assert goals["taps_ge_2pct_30min_detected"]["value"] == 1.0
    assert goals["thefts_ge_8m3_detected"]["value"] == 0.5 and not goals["thefts_ge_8m3_detected"]["met"]
    assert goals["median_minutes_to_alarm_ge_2pct"]["value"] == 20.0  # 10 and 30 min
    assert goals["volume_median_abs_error_pct"]["value"] == 25.0  # 0 % and 50 %
    assert goals["location_median_error_pct_of_segment"]["value"] == 0.0
    assert goals["false_alarms_per_station_month"] == {"value": 0.0, "target": 1.0, "met": True}
    assert figures["events_by_volume"] == {
        "<4": {"events": 1, "caught": 1},
        "4-8": {"events": 0, "caught": 0},
        ">=8": {"events": 2, "caught": 1},
    }
    assert figures["leaks"] == {"events": 1, "caught": 0, "median_minutes_to_alarm": None}


def test_pooled_tallies_add_events_and_station_months() -> None:
    first = Tally.of(judge([theft("A", 0, 60, 0.05)], [tap_alert("a", 10), tap_alert("x", 5000)]), 3.0)
    second = Tally.of(judge([theft("B", 0, 60, 0.05)], [station_alert("s", "EST-03", 9000)]), 3.0)
    pooled = sim_segments.figures(Tally.pooled([first, second]))
    assert pooled["thefts"] == 2 and pooled["station_months"] == 6.0
    # One tap false alarm and one station false alarm over six station-months.
    assert pooled["false_alarms_per_station_month"] == pytest.approx(2 / 6)
    assert pooled["tap_false_alarms_per_station_month"] == pytest.approx(1 / 6)
    assert pooled["false_alarms_by_cause"]["station"]["unexplained"] == 1
    # Where the autoencoder was off, its (absent) incidents are not averaged over those months.
    line_only = Tally.of(judge([], []), 3.0, autoencoder=False)
    mixed = sim_segments.figures(Tally.pooled([second, line_only]))
    assert mixed["station_false_alarms_per_station_month"] == pytest.approx(1 / 3)
    assert mixed["false_alarms_per_station_month"] == pytest.approx(1 / 3)


def test_events_csv_and_the_simulation_give_the_same_truth() -> None:
    """The demo reads events.csv, the suite the simulation: same segments (the topology's ids),
    positions and volumes, so both judge alike."""
    from evaluation.suites.sim import truth_events
    from evaluation.suites.sim_train import line_topology
    from simulator import SimulationConfig, simulate
    from simulator.writer import events_csv

    result = simulate(
        SimulationConfig(stations=3, days=2, seed=1001).with_rates(theft_per_segment_month=60.0)
    )
    from_csv = {e.event_id: e for e in sim_segments.truth_events_from_csv(events_csv(result))}
    direct = truth_events(result)
    segment_ids = {segment.segment_id for segment in line_topology(result).segments}
    thefts = [e for e in direct if e.event_type == "theft"]
    assert thefts
    for event in direct:
        other = from_csv[event.event_id]
        assert (other.event_type, other.segment_id, other.stations) == (
            event.event_type,
            event.segment_id,
            event.stations,
        )
        assert other.start == event.start and other.end == event.end
        if event.event_type == "theft":
            assert event.segment_id in segment_ids
            assert other.position == pytest.approx(event.position, abs=1e-4)  # the CSV rounds
            assert other.volume_m3 == pytest.approx(event.volume_m3, rel=1e-3)
