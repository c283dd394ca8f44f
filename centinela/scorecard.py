"""Incidents from the alerts topic set beside the simulator's true events: caught, missed, false.

An event counts as caught when an incident on one of its stations is active at some point between
the event's start and its end plus a grace period (the downstream flow of a tapped segment takes up
to an hour to settle after the tap closes, so an alarm then is about the same event, not a new one).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

GRACE = timedelta(hours=1)
DETECTABLE = ("theft", "leak")


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class IncidentRow:
    incident_id: str
    station_id: str
    opened: datetime
    closed: datetime | None
    peak_ratio: float
    severity: str
    top_sensors: list[str]
    matched_event: str | None = None


@dataclass
class EventRow:
    event_id: str
    event_type: str
    where: str
    stations: list[str]
    start: datetime
    end: datetime
    size: str
    caught: bool | None  # None: not a detection target (sensor faults, transients)
    minutes_to_alarm: float | None


@dataclass
class Scorecard:
    incidents: list[IncidentRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    data_gaps: int = 0

    @property
    def expected(self) -> int:
        return sum(1 for event in self.events if event.caught is not None)

    @property
    def caught(self) -> int:
        return sum(1 for event in self.events if event.caught)

    @property
    def missed(self) -> int:
        return self.expected - self.caught

    @property
    def false_alarms(self) -> int:
        return sum(1 for incident in self.incidents if incident.matched_event is None)

    @property
    def median_minutes_to_alarm(self) -> float | None:
        delays = [e.minutes_to_alarm for e in self.events if e.caught and e.minutes_to_alarm is not None]
        return statistics.median(delays) if delays else None

    def to_json(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "caught": self.caught,
            "missed": self.missed,
            "false_alarms": self.false_alarms,
            "data_gaps": self.data_gaps,
            "median_minutes_to_alarm": self.median_minutes_to_alarm,
            "incidents": [asdict(row) for row in self.incidents],
            "events": [asdict(row) for row in self.events],
        }


def incidents_from_alerts(alerts: Iterable[dict[str, Any]]) -> list[IncidentRow]:
    """One row per incident id, from its open, update and close alerts."""
    rows: dict[str, IncidentRow] = {}
    for alert in sorted(alerts, key=lambda a: (a.get("window_end", ""), a.get("status", ""))):
        if alert.get("kind", "incident") != "incident":
            continue
        ratio = float(alert["score"]) / float(alert["threshold"]) if float(alert["threshold"]) > 0 else 0.0
        row = rows.get(alert["incident_id"])
        if row is None:
            contributions = alert.get("contributions") or []
            row = IncidentRow(
                incident_id=alert["incident_id"],
                station_id=alert["station_id"],
                opened=_ts(alert["window_end"]),
                closed=None,
                peak_ratio=ratio,
                severity=alert.get("severity", ""),
                top_sensors=[str(c.get("sensor")) for c in contributions[:2]],
            )
            rows[alert["incident_id"]] = row
        if ratio > row.peak_ratio:
            row.peak_ratio = ratio
            row.severity = alert.get("severity", row.severity)
        if alert.get("status") == "close":
            row.closed = _ts(alert["window_end"])
    return sorted(rows.values(), key=lambda r: (r.opened, r.station_id))


def _size(event: pd.Series) -> str:
    if event["unit"] == "fraction_of_flow":
        return f"{100 * float(event['magnitude']):.1f}% of flow"
    return f"{event['magnitude']} {event['unit']}"


def score_incidents(
    alerts: list[dict[str, Any]], events_csv: Path, since: datetime | None = None
) -> Scorecard:
    """Join the alerts with the simulator's ``events.csv`` (only events ending after ``since``)."""
    card = Scorecard(incidents=incidents_from_alerts(alerts))
    card.data_gaps = sum(1 for a in alerts if a.get("kind") == "data_gap" and a.get("status") == "open")
    events = pd.read_csv(events_csv, dtype=str, keep_default_na=False)
    for _, event in events.iterrows():
        start, end = _ts(event["start"]), _ts(event["end"])
        if since is not None and end < since:
            continue
        if event["event_type"] in ("transient", "maintenance"):
            continue
        stations = (event["stations"] or event["station_id"]).split()
        target = event["event_type"] in DETECTABLE
        first_alarm: datetime | None = None
        for incident in card.incidents:
            if incident.station_id not in stations:
                continue
            active_until = incident.closed or datetime.max.replace(tzinfo=start.tzinfo)
            if incident.opened <= end + GRACE and active_until >= start:
                if target:
                    incident.matched_event = event["event_id"]
                first_alarm = incident.opened if first_alarm is None else min(first_alarm, incident.opened)
        caught = (first_alarm is not None) if target else None
        delay = max(0.0, (first_alarm - start).total_seconds() / 60) if first_alarm and target else None
        card.events.append(
            EventRow(
                event_id=event["event_id"],
                event_type=event["event_type"] + (f"/{event['subtype']}" if event["subtype"] else ""),
                where=event["segment"] or event["station_id"],
                stations=stations,
                start=start,
                end=end,
                size=_size(event),
                caught=caught,
                minutes_to_alarm=delay,
            )
        )
    return card
