"""The demo's scorecard counts with the sim suite's rules (one definition of "caught")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation.scorecard import score_incidents

COLUMNS = (
    "event_id,event_type,subtype,label,segment,station_id,stations,sensor,start,end,minutes,magnitude,unit,"
    "position,volume_m3"
)
DAY = "2025-01-01T"
ROWS = (
    (
        "EV-1",
        "theft",
        "tap",
        "1",
        "EST-01>EST-02",
        "",
        "EST-01 EST-02",
        "",
        "10:00",
        "11:00",
        "0.05",
        "fraction_of_flow",
    ),
    (
        "EV-2",
        "theft",
        "tap",
        "1",
        "EST-02>EST-03",
        "",
        "EST-02 EST-03",
        "",
        "20:00",
        "21:00",
        "0.03",
        "fraction_of_flow",
    ),
    (
        "EV-3",
        "transient",
        "setpoint_change",
        "0",
        "",
        "",
        "EST-01",
        "",
        "05:00",
        "06:00",
        "0.9",
        "fraction_of_nominal_flow",
    ),
    ("EV-4", "sensor_fault", "stuck", "0", "", "EST-03", "EST-03", "flow", "15:00", "16:00", "0", "none"),
)


def alert(
    incident: str, station: str, end: str, status: str, ratio: float = 2.0, **extra: Any
) -> dict[str, Any]:
    return {
        "alert_id": f"{incident}-{end}-{status}",
        "incident_id": incident,
        "kind": extra.pop("kind", "incident"),
        "station_id": station,
        "window_start": end,  # only the order and the end matter here
        "window_end": end,
        "status": status,
        "score": ratio,
        "threshold": 1.0,
        "severity": "high" if ratio >= 3 else "low",
        "contributions": [{"sensor": "flow", "share": 0.7}, {"sensor": "pressure", "share": 0.2}],
        **extra,
    }


def events_csv(tmp_path: Path) -> Path:
    lines = [COLUMNS]
    for *head, start, end, magnitude, unit in ROWS:
        lines.append(
            ",".join([*head, f"{DAY}{start}:00Z", f"{DAY}{end}:00Z", "60", magnitude, unit, "", "0"])
        )
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_caught_missed_and_false_alarms_follow_the_sim_suite_rules(tmp_path: Path) -> None:
    alerts = [
        # Opens 15 min into EV-1: caught, 15 min to alarm; its second incident is the same event.
        alert("A", "EST-02", "2025-01-01T10:15:00Z", "open", ratio=3.5),
        alert("A", "EST-02", "2025-01-01T11:30:00Z", "close"),
        alert("B", "EST-01", "2025-01-01T11:40:00Z", "open"),
        # Already open before EV-2 started: does not catch it (and is a false alarm).
        alert("C", "EST-03", "2025-01-01T19:30:00Z", "open"),
        alert("D", "EST-03", "2025-01-01T15:30:00Z", "open", kind="data_gap"),
    ]
    card = score_incidents(alerts, events_csv(tmp_path))
    by_event = {row.event_id: row for row in card.events}
    assert set(by_event) == {"EV-1", "EV-2", "EV-4"}  # routine operations are not listed
    assert by_event["EV-1"].caught is True and by_event["EV-1"].minutes_to_alarm == 15.0
    assert by_event["EV-2"].caught is False
    assert by_event["EV-4"].caught is None  # a sensor fault is listed, not a detection target
    assert (card.expected, card.caught, card.missed) == (2, 1, 1)
    matched = {row.incident_id: row.matched_event for row in card.incidents}
    assert matched == {"A": "EV-1", "B": "EV-1", "C": None}
    assert card.false_alarms == 1 and card.data_gaps == 1
    first = next(row for row in card.incidents if row.incident_id == "A")
    assert first.severity == "high" and first.top_sensors == ["flow", "pressure"]
    assert first.closed is not None
