"""Drift faults and what they leave behind: the ``drift`` block of ``evaluate sim``'s report.

Issue 19's promise: a sensor that drifts must not put its station in one incident for weeks, and a
theft that starts after the drift must still be raisable. Measured on the main runs' test periods:

- every incident's length (first to last alert, event time), against the incident policy's maximum
  (station incidents; tap incidents have no maximum: a tap lasting days is one event);
- each theft or leak that starts after a ``drift`` sensor fault ended at one of its stations: caught
  or not, and whether it was **blocked** at its start, i.e. an incident of its station opened before
  it was still open then (a new one could not open) or a ``meter_fault`` held its segment degraded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from evaluation.suites.sim_events import TruthEvent, _ts

EXTRACTIONS = ("theft", "leak")


@dataclass(frozen=True)
class Span:
    """One incident, from its first alert's window end to its last one's."""

    incident_id: str
    kind: str
    station_id: str
    segment_id: str | None
    opened: datetime
    last: datetime

    @property
    def hours(self) -> float:
        return (self.last - self.opened).total_seconds() / 3600.0

    def covers(self, moment: datetime) -> bool:
        return self.opened < moment <= self.last


def incident_spans(alerts: Iterable[Mapping[str, Any]]) -> list[Span]:
    """Every incident of ``alerts`` (the alerts topic's JSON), in opening order."""
    spans: dict[str, Span] = {}
    for alert in alerts:
        end = _ts(alert["window_end"])
        incident_id = str(alert["incident_id"])
        known = spans.get(incident_id)
        if known is None:
            segment = alert.get("segment") or {}
            spans[incident_id] = Span(
                incident_id, str(alert["kind"]), str(alert["station_id"]), segment.get("segment_id"), end, end
            )
        else:
            spans[incident_id] = Span(
                incident_id,
                known.kind,
                known.station_id,
                known.segment_id,
                min(known.opened, end),
                max(known.last, end),
            )
    return sorted(spans.values(), key=lambda s: s.opened)


def _blocked(event: TruthEvent, spans: Sequence[Span]) -> bool:
    for span in spans:
        if not span.covers(event.start):
            continue
        if span.kind == "meter_fault" and span.segment_id == event.segment_id:
            return True
        if span.kind == "incident" and span.station_id in event.stations:
            return True
    return False


def drift_figures(
    events: Sequence[TruthEvent],
    alerts: Sequence[Mapping[str, Any]],
    caught: Mapping[str, bool],
    max_length: timedelta | None,
) -> dict[str, Any]:
    """One run's (or, summed by ``pool``, every run's) drift figures; ``caught``: event id → caught."""
    spans = incident_spans(alerts)
    station = [s for s in spans if s.kind == "incident"]
    taps = [s for s in spans if s.kind == "tap"]
    limit_h = None if max_length is None else max_length.total_seconds() / 3600.0
    drifts = [e for e in events if e.event_type == "sensor_fault" and e.subtype == "drift"]
    after: list[TruthEvent] = []
    for event in events:
        if event.event_type not in EXTRACTIONS:
            continue
        if any(d.end <= event.start and set(d.stations) & set(event.stations) for d in drifts):
            after.append(event)
    blocked = [e for e in after if _blocked(e, spans)]
    return {
        "drift_faults": len(drifts),
        "max_station_incident_hours": limit_h,
        "longest_station_incident_hours": max((s.hours for s in station), default=None),
        # One evaluation minute of slack: the closing alert carries the window that reached the limit.
        "station_incidents_over_max": sum(
            1 for s in station if limit_h is not None and s.hours > limit_h + 1 / 60
        ),
        "longest_tap_incident_hours": max((s.hours for s in taps), default=None),
        "extractions_after_drift": len(after),
        "caught": sum(1 for e in after if caught.get(e.event_id)),
        "blocked_at_start": len(blocked),
        "blocked": [e.event_id for e in blocked],
    }


def pool(per_run: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The runs' drift figures together, with the verdict on issue 19's target."""
    if not per_run:
        return {}

    def largest(key: str) -> float | None:
        values = [r[key] for r in per_run if r[key] is not None]
        return max(values) if values else None

    summed = {
        k: sum(r[k] for r in per_run)
        for k in (
            "drift_faults",
            "station_incidents_over_max",
            "extractions_after_drift",
            "caught",
            "blocked_at_start",
        )
    }
    return summed | {
        "max_station_incident_hours": per_run[0]["max_station_incident_hours"],
        "longest_station_incident_hours": largest("longest_station_incident_hours"),
        "longest_tap_incident_hours": largest("longest_tap_incident_hours"),
        "blocked": [b for r in per_run for b in r["blocked"]],
        "met": summed["station_incidents_over_max"] == 0 and summed["blocked_at_start"] == 0,
    }
