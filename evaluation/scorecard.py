"""The demo's scorecard: incidents from the alerts topic set beside the simulator's true events.

The rules are the sim suite's (``evaluation.suites.sim_events``), so the demo and ``centinela evaluate
sim`` count the same way: a theft or leak is caught when an incident on one of its stations opens
between its start and its end plus an hour (the downstream flow of a tapped segment takes about that
long to settle); every other incident is a false alarm. This module only reads the simulator's
``events.csv`` and shapes the result for the demo's tables and ``scorecard.json``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from evaluation.suites import sim_events

# Listed but never a detection target: operations the line is expected to do.
ROUTINE = ("transient", "maintenance")


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
    caught: bool | None  # None: not a detection target (sensor faults)
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


def _size(event: pd.Series) -> str:
    if event["unit"] == "fraction_of_flow":
        return f"{100 * float(event['magnitude']):.1f}% of flow"
    return f"{event['magnitude']} {event['unit']}"


def _truth_event(event: pd.Series, stations: list[str]) -> sim_events.TruthEvent:
    extraction = event["event_type"] in ("theft", "leak")
    return sim_events.TruthEvent(
        event_id=event["event_id"],
        event_type=event["event_type"],
        subtype=event["subtype"],
        stations=tuple(stations),
        start=_ts(event["start"]),
        end=_ts(event["end"]),
        magnitude=float(event["magnitude"]) if extraction and event["magnitude"] else None,
        sensor=event["sensor"] or None,
    )


def score_incidents(
    alerts: Iterable[dict[str, Any]], events_csv: Path, since: datetime | None = None
) -> Scorecard:
    """Join the alerts with the simulator's ``events.csv`` (only events ending after ``since``)."""
    alerts = list(alerts)
    folded = sim_events.fold_incidents(alerts)
    table = pd.read_csv(events_csv, dtype=str, keep_default_na=False)
    shown: list[tuple[pd.Series, list[str]]] = []
    for _, event in table.iterrows():
        if since is not None and _ts(event["end"]) < since:
            continue
        shown.append((event, (event["stations"] or event["station_id"]).split()))
    truths = [_truth_event(event, stations) for event, stations in shown]
    data_end = max([i.last_window_end for i in folded] + [t.end for t in truths], default=datetime.now(UTC))
    joined = sim_events.join(truths, folded, data_end)
    outcome = {record["event_id"]: record for record in joined.events}

    card = Scorecard(data_gaps=sum(1 for i in folded if i.kind == sim_events.GAP_KIND))
    for incident in folded:
        if incident.kind == sim_events.GAP_KIND:
            continue
        card.incidents.append(
            IncidentRow(
                incident_id=incident.incident_id,
                station_id=incident.station_id,
                opened=incident.opened_at,
                closed=incident.last_window_end if incident.closed else None,
                peak_ratio=incident.peak_ratio,
                severity=incident.severity,
                top_sensors=list(incident.top_sensors),
                matched_event=joined.explained_by.get(incident.incident_id),
            )
        )
    for (event, stations), truth in zip(shown, truths, strict=True):
        if truth.event_type in ROUTINE:
            continue
        record = outcome.get(truth.event_id)
        card.events.append(
            EventRow(
                event_id=truth.event_id,
                event_type=truth.event_type + (f"/{truth.subtype}" if truth.subtype else ""),
                where=event["segment"] or event["station_id"],
                stations=stations,
                start=truth.start,
                end=truth.end,
                size=_size(event),
                caught=None if record is None else bool(record["caught"]),
                minutes_to_alarm=None if record is None else record["minutes_to_alarm"],
            )
        )
    return card
