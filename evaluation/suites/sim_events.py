"""The sim suite's event-level figures: the detector's alerts joined with the simulator's labelled events.

Pure Python on plain records, so the rules are unit-tested without Kafka or TensorFlow:

- an **incident** is every alert sharing an ``incident_id``; it opens at its first window's end
  (the moment the service could have raised it) and spans from that window's start to its last
  alert's window end (or the end of the data when it never closed);
- a theft or leak is **caught** when an ``anomaly`` incident on one of its stations opens inside
  ``(start, end + grace]``: the window must hold extraction minutes, and the downstream flow takes
  about an hour to recover after the tap closes (docs/simulator.md);
- every other anomaly incident is a false alarm, classified by what was under way (or less than the
  grace period over) when it opened: a sensor fault on that station, a theft elsewhere on the line,
  a transient or maintenance naming that station, or nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

# Theft size bands, fraction of the segment's flow, as in MEASURE.md: [low, high).
BANDS: dict[str, tuple[float, float]] = {
    "0.5-1": (0.005, 0.01),
    "1-2": (0.01, 0.02),
    "2-5": (0.02, 0.05),
    "5-15": (0.05, 0.1500001),
}
GRACE = timedelta(hours=1)
# An anomaly alarm whose largest sensor share is at least this reads as one instrument's trouble.
SENSOR_TROUBLE_SHARE = 0.6
DAYS_PER_MONTH = 30.0
GAP_KIND = "data_gap"  # every other alert kind (the tracker's ``incident``) is an anomaly alarm

# What a false alarm overlapped, most specific first.
FALSE_ALARM_CAUSES = ("sensor_fault", "theft_elsewhere", "maintenance", "transient", "unexplained")


@dataclass(frozen=True, slots=True)
class TruthEvent:
    """One labelled simulator event, with aware datetimes (end exclusive)."""

    event_id: str
    event_type: str
    subtype: str
    stations: tuple[str, ...]
    start: datetime
    end: datetime
    magnitude: float | None = None
    segment: int | None = None
    sensor: str | None = None
    volume_m3: float | None = None
    true_rate_m3h: float | None = None
    segment_id: str | None = None  # events.csv's ``segment`` (``EST-01>EST-02``), as the topology names it
    position: float | None = None  # of a tap or leak: fraction of the segment's length from upstream


@dataclass(slots=True)
class Incident:
    """The alerts of one incident, folded."""

    incident_id: str
    kind: str
    station_id: str
    window_start: datetime
    opened_at: datetime
    last_window_end: datetime
    closed: bool = False
    peak_ratio: float = 0.0
    top_share: float = 0.0
    severity: str = ""  # of the alert with the peak ratio
    top_sensors: tuple[str, ...] = ()  # the two largest shares of that alert
    reasons: set[str] = field(default_factory=set)

    @property
    def top_sensor(self) -> str | None:
        return self.top_sensors[0] if self.top_sensors else None

    def span(self, data_end: datetime) -> tuple[datetime, datetime]:
        return self.window_start, (self.last_window_end if self.closed else data_end)


def _ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def fold_incidents(alerts: Iterable[Mapping[str, Any]]) -> list[Incident]:
    """Alerts (decoded JSON of the alerts topic) grouped into incidents, in opening order."""
    incidents: dict[str, Incident] = {}
    ordered = sorted(alerts, key=lambda a: (_ts(a["window_end"]), str(a["station_id"])))
    for alert in ordered:
        end = _ts(alert["window_end"])
        key = str(alert["incident_id"])
        incident = incidents.get(key)
        if incident is None:
            incident = Incident(
                incident_id=key,
                kind=str(alert["kind"]),
                station_id=str(alert["station_id"]),
                window_start=_ts(alert["window_start"]),
                opened_at=end,
                last_window_end=end,
            )
            incidents[key] = incident
        incident.last_window_end = max(incident.last_window_end, end)
        if alert.get("status") == "close":
            incident.closed = True
        if alert.get("reason"):
            incident.reasons.add(str(alert["reason"]))
        score, threshold = alert.get("score"), alert.get("threshold")
        if score is not None and threshold:
            ratio = float(score) / float(threshold)
            if ratio > incident.peak_ratio:
                incident.peak_ratio = ratio
                incident.severity = str(alert.get("severity") or incident.severity)
                shares = alert.get("contributions") or []
                if shares:
                    incident.top_share = float(shares[0]["share"])
                    incident.top_sensors = tuple(str(share["sensor"]) for share in shares[:2])
    return sorted(incidents.values(), key=lambda i: (i.opened_at, i.station_id))


def quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def band_of(magnitude: float) -> str | None:
    for name, (low, high) in BANDS.items():
        if low <= magnitude < high:
            return name
    return None


@dataclass
class Join:
    """Per-event outcomes and per-incident classification."""

    events: list[dict[str, Any]]
    false_alarms: list[dict[str, Any]]
    faults: list[dict[str, Any]]
    caught_by: dict[str, Incident]
    explained_by: dict[str, str] = field(default_factory=dict)  # incident id -> the event it belongs to


def join(
    events: Sequence[TruthEvent],
    incidents: Sequence[Incident],
    data_end: datetime,
    grace: timedelta = GRACE,
) -> Join:
    """Match incidents to events; see the module docstring for the rules."""
    extractions = [e for e in events if e.event_type in ("theft", "leak")]
    anomaly = [i for i in incidents if i.kind != GAP_KIND]
    explained: set[str] = set()
    records: list[dict[str, Any]] = []
    caught_by: dict[str, Incident] = {}
    explained_by: dict[str, str] = {}
    for event in extractions:
        hits = [
            i
            for i in anomaly
            if i.station_id in event.stations and event.start < i.opened_at <= event.end + grace
        ]
        explained.update(i.incident_id for i in hits)
        for hit in hits:
            explained_by.setdefault(hit.incident_id, event.event_id)
        first = min(hits, key=lambda i: i.opened_at) if hits else None
        if first is not None:
            caught_by[event.event_id] = first
        records.append(
            {
                "event_id": event.event_id,
                "event_type": event.event_type,
                "stations": list(event.stations),
                "start": event.start.isoformat(),
                "end": event.end.isoformat(),
                "minutes": (event.end - event.start).total_seconds() / 60.0,
                "magnitude": event.magnitude,
                "band": band_of(event.magnitude) if event.magnitude is not None else None,
                "caught": first is not None,
                "minutes_to_alarm": (
                    (first.opened_at - event.start).total_seconds() / 60.0 if first is not None else None
                ),
                "alarm_station": first.station_id if first is not None else None,
                "true_rate_m3h": event.true_rate_m3h,
                "true_volume_m3": event.volume_m3,
            }
        )

    faults = [e for e in events if e.event_type == "sensor_fault"]
    false_alarms: list[dict[str, Any]] = []
    for incident in anomaly:
        if incident.incident_id in explained:
            continue
        cause = "unexplained"
        for candidate in FALSE_ALARM_CAUSES[:-1]:
            if _cause_matches(candidate, incident, events, grace):
                cause = candidate
                break
        false_alarms.append(
            {
                "incident_id": incident.incident_id,
                "station_id": incident.station_id,
                "opened_at": incident.opened_at.isoformat(),
                "cause": cause,
                "peak_score_ratio": round(incident.peak_ratio, 3),
                "top_sensor": incident.top_sensor,
                "top_share": round(incident.top_share, 3),
                "reads_as_sensor_trouble": incident.top_share >= SENSOR_TROUBLE_SHARE,
            }
        )

    fault_records: list[dict[str, Any]] = []
    for fault in faults:
        # Alarms that opened while the fault was on (or in the hour after), on the faulty station.
        during = [
            i
            for i in incidents
            if i.station_id in fault.stations and fault.start < i.opened_at <= fault.end + grace
        ]
        anomalies = [i for i in during if i.kind != GAP_KIND]
        gap_hits = [i for i in during if i.kind == GAP_KIND]
        fault_records.append(
            {
                "event_id": fault.event_id,
                "subtype": fault.subtype,
                "station": fault.stations[0] if fault.stations else None,
                "sensor": fault.sensor,
                "minutes": (fault.end - fault.start).total_seconds() / 60.0,
                "data_gap_alarms": len(gap_hits),
                "anomaly_alarms": len(anomalies),
                "anomaly_alarms_reading_as_sensor_trouble": sum(
                    1 for i in anomalies if i.top_share >= SENSOR_TROUBLE_SHARE
                ),
                "anomaly_alarms_naming_the_faulty_sensor": sum(
                    1 for i in anomalies if fault.sensor not in (None, "*") and i.top_sensor == fault.sensor
                ),
            }
        )
    return Join(records, false_alarms, fault_records, caught_by, explained_by)


def _cause_matches(cause: str, incident: Incident, events: Sequence[TruthEvent], grace: timedelta) -> bool:
    """Whether an event of kind ``cause`` was under way (or in its grace hour) when ``incident`` opened."""
    for event in events:
        if not event.start < incident.opened_at <= event.end + grace:
            continue
        if cause == "theft_elsewhere" and event.event_type in ("theft", "leak"):
            return True
        if cause == event.event_type and incident.station_id in event.stations:
            return True
    return False


def band_figures(
    records: Sequence[Mapping[str, Any]],
    event_type: str = "theft",
    *,
    key: str = "band",
    bands: Iterable[str] = tuple(BANDS),
) -> dict[str, Any]:
    """Detection rate, median and p90 minutes to alarm, and counts, per band (``record[key]``)."""
    rate: dict[str, float | None] = {}
    median: dict[str, float | None] = {}
    p90: dict[str, float | None] = {}
    counts: dict[str, dict[str, int]] = {}
    for band in bands:
        chosen = [r for r in records if r["event_type"] == event_type and r.get(key) == band]
        delays = [float(r["minutes_to_alarm"]) for r in chosen if r["caught"]]
        counts[band] = {"events": len(chosen), "caught": len(delays)}
        rate[band] = len(delays) / len(chosen) if chosen else None
        median[band] = quantile(delays, 0.5)
        p90[band] = quantile(delays, 0.9)
    return {"rate": rate, "median": median, "p90": p90, "counts": counts}


def smallest_detected(
    records: Sequence[Mapping[str, Any]], share: float = 0.9, min_events: int = 3
) -> float | None:
    """The smallest size s such that, for s and every larger theft size, at least ``share`` of the
    thefts of that size or more were caught (so one lucky small catch does not pull it down), counting
    only sizes with at least ``min_events`` thefts that large (one caught giant proves nothing)."""
    thefts = sorted(
        (r for r in records if r["event_type"] == "theft" and r["magnitude"] is not None),
        key=lambda r: float(r["magnitude"]),
    )
    best: float | None = None
    caught = 0
    for index in range(len(thefts) - 1, -1, -1):
        caught += 1 if thefts[index]["caught"] else 0
        tail = len(thefts) - index
        if caught < share * tail:
            break
        if tail >= min_events:
            best = float(thefts[index]["magnitude"])
    return best


def rate_at_least(records: Sequence[Mapping[str, Any]], size: float) -> tuple[float | None, int]:
    """Share of thefts of ``size`` or more that were caught, and how many there were."""
    chosen = [r for r in records if r["event_type"] == "theft" and float(r["magnitude"] or 0) >= size]
    if not chosen:
        return None, 0
    return sum(1 for r in chosen if r["caught"]) / len(chosen), len(chosen)


def median_delay(records: Sequence[Mapping[str, Any]]) -> float | None:
    return quantile([float(r["minutes_to_alarm"]) for r in records if r["caught"]], 0.5)


def per_station_month(count: int, stations: int, days: float) -> float:
    return count / (stations * days / DAYS_PER_MONTH) if stations and days else float("nan")
