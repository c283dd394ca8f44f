"""Judging the line-aware service: its segment incidents against the simulator's events.

Pure Python on plain records (decoded alerts, ``TruthEvent``), so every rule is unit-tested without
Kafka or TensorFlow:

- a **tap incident** is every ``tap`` alert sharing an ``incident_id``; it opens at its first
  alert's ``window_end`` (the minute of the decision);
- a theft or leak is **caught** when a tap incident on *its segment* (the alert's
  ``segment.segment_id`` equal to events.csv's ``segment``, both ``EST-01>EST-02``) opens inside
  ``(start, end + grace]``; time to alarm = opening − start. An incident already open when the tap
  starts does not catch it;
- the incident's **estimate**: rate and volume from its last alert (the close alert when it closed:
  the volume over the whole incident), the location from its last alert that carried one (an alert
  may say ``location_km`` None when the pressure evidence is too weak); location error =
  |location_km − position × length_km| as a share of the segment's length, volume error =
  |volume_m3 − true volume| / true volume;
- every tap incident that catches nothing is a **false alarm**, classified by what was under way (or
  less than the grace period over) when it opened: a sensor fault on either station of its segment,
  a theft or leak elsewhere, maintenance or a transient naming either station, else unexplained;
- a **station incident** (the per-station autoencoder, kind ``incident``) counts in the service's
  false alarms unless it is linked to a tap incident (``related``, either way) or opened while a
  theft or leak on one of its stations was under way (the same event, shown at the station);
  the rest are classified like tap false alarms (a sensor fault on that station, ...);
- a simulated **flow or level meter fault** is reported when a ``meter_fault`` incident naming
  that station and sensor opens inside ``(start, end + grace]``; meter_fault incidents that match
  no fault are counted as spurious.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from evaluation.suites.sim_events import (
    FALSE_ALARM_CAUSES,
    GRACE,
    TruthEvent,
    _ts,
    band_figures,
    band_of,
    quantile,
)

TAP_KIND = "tap"
METER_KIND = "meter_fault"
STATION_KIND = "incident"
# Extracted volume bands, m³ (true volume from events.csv ``volume_m3``): [low, high).
VOLUME_BANDS: dict[str, tuple[float, float]] = {
    "<4": (0.0, 4.0),
    "4-8": (4.0, 8.0),
    ">=8": (8.0, math.inf),
}
# The meters a segment balance uses: their faults must be reported, never read as a theft.
METER_SENSORS = ("flow", "tank_level")
# Causes of a false alarm that are the line's normal operation (the ≤ 1 per station-month target).
NORMAL_CAUSES = ("unexplained", "transient", "maintenance")
STATION_CAUSES = ("linked", "same_event", *FALSE_ALARM_CAUSES)

TARGETS: dict[str, tuple[float, str]] = {
    # key: (target, "min" = value must reach it, "max" = value must not exceed it)
    "taps_ge_2pct_detected": (0.85, "min"),
    "taps_ge_2pct_30min_detected": (0.95, "min"),
    "thefts_ge_8m3_detected": (0.90, "min"),
    "median_minutes_to_alarm_ge_2pct": (15.0, "max"),
    "false_alarms_per_station_month": (1.0, "max"),
    "location_median_error_pct_of_segment": (10.0, "max"),
    "volume_median_abs_error_pct": (15.0, "max"),
}
# Beside the normal-operation budget, every cause together.
FALSE_ALARMS_ALL_CAUSES_TARGET = 1.5


def truth_events_from_csv(text: str) -> list[TruthEvent]:
    """The events of a simulator ``events.csv`` (its ``segment``, ``position`` and ``volume_m3``
    columns as written), for the demo; the suite builds the same from the simulation itself."""
    out: list[TruthEvent] = []
    for row in csv.DictReader(io.StringIO(text)):
        labelled = row["event_type"] in ("theft", "leak")
        minutes = float(row["minutes"] or 0.0)
        volume = float(row["volume_m3"]) if labelled and row["volume_m3"] else None
        out.append(
            TruthEvent(
                event_id=row["event_id"],
                event_type=row["event_type"],
                subtype=row["subtype"],
                stations=tuple((row["stations"] or row["station_id"]).split()),
                start=_ts(row["start"]),
                end=_ts(row["end"]),
                magnitude=float(row["magnitude"]) if labelled and row["magnitude"] else None,
                sensor=row["sensor"] or None,
                volume_m3=volume,
                true_rate_m3h=volume * 60.0 / minutes if volume is not None and minutes else None,
                segment_id=row["segment"] or None,
                position=float(row["position"]) if labelled and row["position"] not in ("", "nan") else None,
            )
        )
    return out


def volume_band_of(volume_m3: float) -> str | None:
    for name, (low, high) in VOLUME_BANDS.items():
        if low <= volume_m3 < high:
            return name
    return None


@dataclass(slots=True)
class SegmentIncident:
    """The alerts of one segment incident (tap or meter_fault), folded."""

    incident_id: str
    kind: str
    station_id: str
    segment_id: str
    upstream: str
    downstream: str
    length_km: float
    opened_at: datetime
    last_window_end: datetime
    closed: bool = False
    sensor: str | None = None
    peak_ratio: float = 0.0
    related: set[str] = field(default_factory=set)
    estimate_at_open: dict[str, Any] | None = None
    estimate: dict[str, Any] | None = None  # of the last alert that carried one
    located: dict[str, Any] | None = None  # of the last alert whose estimate had a location
    alerts: int = 0

    @property
    def stations(self) -> tuple[str, str]:
        return self.upstream, self.downstream


@dataclass(slots=True)
class StationIncident:
    incident_id: str
    station_id: str
    opened_at: datetime
    related: set[str] = field(default_factory=set)


def _order(alert: Mapping[str, Any]) -> tuple[datetime, int]:
    rank = {"open": 0, "update": 1, "close": 2}.get(str(alert.get("status")), 1)
    return _ts(alert["window_end"]), rank


def fold_segment_incidents(alerts: Iterable[Mapping[str, Any]]) -> list[SegmentIncident]:
    """``tap`` and ``meter_fault`` alerts grouped into incidents, in opening order."""
    incidents: dict[str, SegmentIncident] = {}
    chosen = [a for a in alerts if a.get("kind") in (TAP_KIND, METER_KIND)]
    for alert in sorted(chosen, key=_order):
        end = _ts(alert["window_end"])
        key = str(alert["incident_id"])
        incident = incidents.get(key)
        if incident is None:
            segment = alert.get("segment") or {}
            incident = SegmentIncident(
                incident_id=key,
                kind=str(alert["kind"]),
                station_id=str(alert["station_id"]),
                segment_id=str(segment.get("segment_id", "")),
                upstream=str(segment.get("upstream", alert["station_id"])),
                downstream=str(segment.get("downstream", "")),
                length_km=float(segment.get("length_km") or 0.0),
                opened_at=end,
                last_window_end=end,
                sensor=alert.get("sensor"),
            )
            incidents[key] = incident
        incident.alerts += 1
        incident.last_window_end = max(incident.last_window_end, end)
        incident.related.update(str(r) for r in alert.get("related") or ())
        if alert.get("status") == "close":
            incident.closed = True
        score, threshold = alert.get("score"), alert.get("threshold")
        if score is not None and threshold:
            incident.peak_ratio = max(incident.peak_ratio, float(score) / float(threshold))
        estimate = alert.get("estimate")
        if estimate:
            if incident.estimate_at_open is None:
                incident.estimate_at_open = dict(estimate)
            incident.estimate = dict(estimate)
            if estimate.get("location_km") is not None:
                incident.located = dict(estimate)
    return sorted(incidents.values(), key=lambda i: (i.opened_at, i.segment_id))


def fold_station_incidents(alerts: Iterable[Mapping[str, Any]]) -> list[StationIncident]:
    """The per-station autoencoder's incidents (kind ``incident``), with the ids they are linked to."""
    incidents: dict[str, StationIncident] = {}
    for alert in sorted((a for a in alerts if a.get("kind") == STATION_KIND), key=_order):
        key = str(alert["incident_id"])
        incident = incidents.get(key)
        if incident is None:
            incident = StationIncident(key, str(alert["station_id"]), _ts(alert["window_end"]))
            incidents[key] = incident
        incident.related.update(str(r) for r in alert.get("related") or ())
    return sorted(incidents.values(), key=lambda i: (i.opened_at, i.station_id))


@dataclass
class SegmentJoin:
    events: list[dict[str, Any]]
    false_alarms: list[dict[str, Any]]  # tap incidents that caught nothing
    station_incidents: list[dict[str, Any]]  # every station incident with its cause
    meter_faults: list[dict[str, Any]]  # every simulated flow / level fault
    spurious_meter_faults: list[dict[str, Any]]  # meter_fault incidents matching no fault


def _under_way(event: TruthEvent, moment: datetime, grace: timedelta) -> bool:
    return event.start < moment <= event.end + grace


def _cause(
    opened_at: datetime,
    stations: Sequence[str],
    segment_id: str | None,
    events: Sequence[TruthEvent],
    grace: timedelta,
) -> str:
    """The most specific event under way (or in its grace period) when an alarm opened."""
    found: set[str] = set()
    for event in events:
        if not _under_way(event, opened_at, grace):
            continue
        if event.event_type in ("theft", "leak"):
            if segment_id is None or event.segment_id != segment_id:
                found.add("theft_elsewhere")
        elif any(s in stations for s in event.stations):
            found.add(event.event_type)
    for cause in FALSE_ALARM_CAUSES[:-1]:
        if cause in found:
            return cause
    return "unexplained"


def _error_pct(estimate: float, truth: float) -> float | None:
    return None if truth == 0 else 100.0 * abs(estimate - truth) / truth


def _event_record(
    event: TruthEvent, hit: SegmentIncident | None, lengths: Mapping[str, float]
) -> dict[str, Any]:
    length = lengths.get(event.segment_id or "", 0.0)
    true_km = event.position * length if event.position is not None and length else None
    record: dict[str, Any] = {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "segment": event.segment_id,
        "stations": list(event.stations),
        "start": event.start.isoformat(),
        "end": event.end.isoformat(),
        "minutes": (event.end - event.start).total_seconds() / 60.0,
        "magnitude": event.magnitude,
        "band": band_of(event.magnitude) if event.magnitude is not None else None,
        "true_volume_m3": event.volume_m3,
        "volume_band": volume_band_of(event.volume_m3) if event.volume_m3 is not None else None,
        "true_rate_m3h": event.true_rate_m3h,
        "true_location_km": true_km,
        "segment_length_km": length or None,
        "caught": hit is not None,
        "minutes_to_alarm": (hit.opened_at - event.start).total_seconds() / 60.0 if hit else None,
        "incident_id": hit.incident_id if hit else None,
        "estimate": None,
        "location_error_pct_of_segment": None,
        "volume_error_pct": None,
        "rate_error_pct": None,
    }
    if hit is None or hit.estimate is None:
        return record
    estimate = hit.estimate
    located = hit.located or {}
    record["estimate"] = {k: estimate.get(k) for k in ("rate_m3h", "volume_m3", "onset")} | {
        k: located.get(k) for k in ("location_km", "location_sigma_km")
    }
    location = located.get("location_km")
    if location is not None and true_km is not None:
        record["location_error_pct_of_segment"] = 100.0 * abs(float(location) - true_km) / length
    if estimate.get("volume_m3") is not None and event.volume_m3:
        record["volume_error_pct"] = _error_pct(float(estimate["volume_m3"]), event.volume_m3)
    if estimate.get("rate_m3h") is not None and event.true_rate_m3h:
        record["rate_error_pct"] = _error_pct(float(estimate["rate_m3h"]), event.true_rate_m3h)
    return record


def join_segments(
    events: Sequence[TruthEvent],
    segment_incidents: Sequence[SegmentIncident],
    station_incidents: Sequence[StationIncident],
    lengths: Mapping[str, float],
    grace: timedelta = GRACE,
) -> SegmentJoin:
    """Match the service's incidents with the events; see the module docstring for the rules.

    ``lengths``: segment id → length in km (the topology's), for the true location.
    """
    taps = [i for i in segment_incidents if i.kind == TAP_KIND]
    meters = [i for i in segment_incidents if i.kind == METER_KIND]
    records: list[dict[str, Any]] = []
    catching: set[str] = set()
    for event in (e for e in events if e.event_type in ("theft", "leak")):
        hits = [i for i in taps if i.segment_id == event.segment_id and _under_way(event, i.opened_at, grace)]
        catching.update(i.incident_id for i in hits)
        first = min(hits, key=lambda i: i.opened_at) if hits else None
        records.append(_event_record(event, first, lengths))

    false_alarms = [
        {
            "incident_id": i.incident_id,
            "segment": i.segment_id,
            "opened_at": i.opened_at.isoformat(),
            "cause": _cause(i.opened_at, i.stations, i.segment_id, events, grace),
            "peak_score_ratio": round(i.peak_ratio, 3),
            "volume_m3": (i.estimate or {}).get("volume_m3"),
        }
        for i in taps
        if i.incident_id not in catching
    ]

    tap_ids = {i.incident_id for i in taps}
    linked_to_tap = {r for i in taps for r in i.related}
    station_records: list[dict[str, Any]] = []
    for incident in station_incidents:
        if incident.incident_id in linked_to_tap or incident.related & tap_ids:
            cause = "linked"
        elif any(
            e.event_type in ("theft", "leak")
            and incident.station_id in e.stations
            and _under_way(e, incident.opened_at, grace)
            for e in events
        ):
            cause = "same_event"
        else:
            cause = _cause(incident.opened_at, (incident.station_id,), None, events, grace)
        station_records.append(
            {
                "incident_id": incident.incident_id,
                "station_id": incident.station_id,
                "opened_at": incident.opened_at.isoformat(),
                "cause": cause,
            }
        )

    fault_records: list[dict[str, Any]] = []
    matched: set[str] = set()
    for fault in (e for e in events if e.event_type == "sensor_fault"):
        sensors = METER_SENSORS if fault.sensor in (None, "*") else (fault.sensor,)
        if not set(sensors) & set(METER_SENSORS):
            continue
        station = fault.stations[0] if fault.stations else None
        on_station = [i for i in meters if station in i.stations and _under_way(fault, i.opened_at, grace)]
        right = [i for i in on_station if i.station_id == station and _sensor_matches(i.sensor, sensors)]
        matched.update(i.incident_id for i in on_station)
        first = min(right, key=lambda i: i.opened_at) if right else None
        taps_during = [i for i in taps if station in i.stations and _under_way(fault, i.opened_at, grace)]
        fault_records.append(
            {
                "event_id": fault.event_id,
                "subtype": fault.subtype,
                "station": station,
                "sensor": fault.sensor,
                "minutes": (fault.end - fault.start).total_seconds() / 60.0,
                "reported": first is not None,
                "minutes_to_report": (first.opened_at - fault.start).total_seconds() / 60.0
                if first
                else None,
                "meter_fault_alarms_on_its_segments": len(on_station),
                "tap_alarms_during": len(taps_during),
            }
        )
    spurious = [
        {
            "incident_id": i.incident_id,
            "station_id": i.station_id,
            "segment": i.segment_id,
            "sensor": i.sensor,
            "opened_at": i.opened_at.isoformat(),
            "cause": _cause(i.opened_at, i.stations, i.segment_id, events, grace),
        }
        for i in meters
        if i.incident_id not in matched
    ]
    return SegmentJoin(records, false_alarms, station_records, fault_records, spurious)


def _sensor_matches(named: str | None, sensors: Sequence[str]) -> bool:
    """A meter_fault names the reading field (``flow``) or a qualified form ending in it."""
    if named is None:
        return False
    return any(named == s or named.endswith(f".{s}") or named.endswith(f":{s}") for s in sensors)


# -- figures -------------------------------------------------------------------------------------
def _share(records: Sequence[Mapping[str, Any]]) -> float | None:
    return sum(1 for r in records if r["caught"]) / len(records) if records else None


def _thefts(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in records if r["event_type"] == "theft"]


def subsets(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The thefts each detection target counts."""
    thefts = _thefts(records)
    at_2pct = [r for r in thefts if float(r["magnitude"] or 0.0) >= 0.02]
    return {
        "taps_ge_2pct": at_2pct,
        "taps_ge_2pct_30min": [r for r in at_2pct if float(r["minutes"]) >= 30.0],
        "thefts_ge_8m3": [r for r in thefts if float(r["true_volume_m3"] or 0.0) >= 8.0],
    }


def _target(key: str, value: float | None) -> dict[str, Any]:
    goal, direction = TARGETS[key]
    met = value is not None and (value >= goal if direction == "min" else value <= goal)
    return {"value": value, "target": goal, "met": met}


def targets(records: Sequence[Mapping[str, Any]], false_alarms_per_station_month: float) -> dict[str, Any]:
    """The issue's seven targets, each ``{"value", "target", "met"}`` (value None: nothing to judge)."""
    chosen = subsets(records)
    caught_2pct = [r for r in chosen["taps_ge_2pct"] if r["caught"]]
    thefts = [r for r in _thefts(records) if r["caught"]]
    location = [
        r["location_error_pct_of_segment"] for r in thefts if r["location_error_pct_of_segment"] is not None
    ]
    volume = [r["volume_error_pct"] for r in thefts if r["volume_error_pct"] is not None]
    values: dict[str, float | None] = {
        "taps_ge_2pct_detected": _share(chosen["taps_ge_2pct"]),
        "taps_ge_2pct_30min_detected": _share(chosen["taps_ge_2pct_30min"]),
        "thefts_ge_8m3_detected": _share(chosen["thefts_ge_8m3"]),
        "median_minutes_to_alarm_ge_2pct": quantile([float(r["minutes_to_alarm"]) for r in caught_2pct], 0.5),
        "false_alarms_per_station_month": false_alarms_per_station_month,
        "location_median_error_pct_of_segment": quantile(location, 0.5),
        "volume_median_abs_error_pct": quantile(volume, 0.5),
    }
    return {key: _target(key, value) for key, value in values.items()}


def count_causes(records: Sequence[Mapping[str, Any]], causes: Sequence[str]) -> dict[str, int]:
    return {c: sum(1 for r in records if r["cause"] == c) for c in causes}


@dataclass(frozen=True)
class Tally:
    """What the figures of a set of runs (one seed, or every seed pooled) are computed from."""

    events: list[dict[str, Any]]
    false_alarms: list[dict[str, Any]]
    station_incidents: list[dict[str, Any]]
    meter_faults: list[dict[str, Any]]
    spurious_meter_faults: list[dict[str, Any]]
    station_months: float
    # Station-months on which the per-station autoencoder ran (0 where the service ran the line
    # alone): its incidents' rate is counted over these, and added to the tap incidents' rate.
    autoencoder_station_months: float

    @classmethod
    def of(cls, joined: SegmentJoin, station_months: float, *, autoencoder: bool = True) -> Tally:
        return cls(
            joined.events,
            joined.false_alarms,
            joined.station_incidents,
            joined.meter_faults,
            joined.spurious_meter_faults,
            station_months,
            station_months if autoencoder else 0.0,
        )

    @classmethod
    def pooled(cls, tallies: Sequence[Tally]) -> Tally:
        return cls(
            [e for t in tallies for e in t.events],
            [f for t in tallies for f in t.false_alarms],
            [s for t in tallies for s in t.station_incidents],
            [m for t in tallies for m in t.meter_faults],
            [m for t in tallies for m in t.spurious_meter_faults],
            sum(t.station_months for t in tallies),
            sum(t.autoencoder_station_months for t in tallies),
        )


def figures(tally: Tally) -> dict[str, Any]:
    """Every figure of the service row: bands, volumes, targets, false alarms, estimates, meters, leaks."""
    per_month = tally.station_months or math.nan
    ae_months = tally.autoencoder_station_months or math.inf  # no autoencoder: no station incidents
    tap_causes = count_causes(tally.false_alarms, FALSE_ALARM_CAUSES)
    station_causes = count_causes(tally.station_incidents, STATION_CAUSES)
    tap_normal = sum(tap_causes[c] for c in NORMAL_CAUSES)
    station_normal = sum(station_causes[c] for c in NORMAL_CAUSES)
    station_all = sum(station_causes[c] for c in FALSE_ALARM_CAUSES)
    normal = tap_normal / per_month + station_normal / ae_months
    everything = len(tally.false_alarms) / per_month + station_all / ae_months
    bands = band_figures(tally.events)
    volumes = band_figures(tally.events, key="volume_band", bands=tuple(VOLUME_BANDS))
    leaks = [r for r in tally.events if r["event_type"] == "leak"]
    thefts = [r for r in _thefts(tally.events) if r["caught"]]
    location = [
        r["location_error_pct_of_segment"] for r in thefts if r["location_error_pct_of_segment"] is not None
    ]
    volume = [r["volume_error_pct"] for r in thefts if r["volume_error_pct"] is not None]
    rate = [r["rate_error_pct"] for r in thefts if r["rate_error_pct"] is not None]
    chosen = subsets(tally.events)
    faults = tally.meter_faults
    return {
        "station_months": tally.station_months,
        "thefts": len(_thefts(tally.events)),
        "detection_rate_by_band": bands["rate"],
        "median_minutes_to_alarm_by_band": bands["median"],
        "p90_minutes_to_alarm_by_band": bands["p90"],
        "events_by_band": bands["counts"],
        "detection_rate_by_volume": volumes["rate"],
        "median_minutes_to_alarm_by_volume": volumes["median"],
        "p90_minutes_to_alarm_by_volume": volumes["p90"],
        "events_by_volume": volumes["counts"],
        "target_counts": {
            k: {"events": len(v), "caught": sum(1 for r in v if r["caught"])} for k, v in chosen.items()
        },
        "false_alarms_per_station_month": normal,
        "false_alarms_per_station_month_all": everything,
        "false_alarms_all_causes_target": {
            "value": everything,
            "target": FALSE_ALARMS_ALL_CAUSES_TARGET,
            "met": everything <= FALSE_ALARMS_ALL_CAUSES_TARGET,
        },
        "tap_false_alarms_per_station_month": tap_normal / per_month,
        "tap_false_alarms_per_station_month_all": len(tally.false_alarms) / per_month,
        "station_false_alarms_per_station_month": station_normal / ae_months,
        "autoencoder_station_months": tally.autoencoder_station_months,
        "false_alarms_by_cause": {"tap": tap_causes, "station": station_causes},
        "targets": targets(tally.events, normal),
        "location": {
            "estimated": len(location),
            "median_error_pct_of_segment": quantile(location, 0.5),
            "p90_error_pct_of_segment": quantile(location, 0.9),
        },
        "volume": {
            "estimated": len(volume),
            "median_abs_error_pct": quantile(volume, 0.5),
            "p90_abs_error_pct": quantile(volume, 0.9),
            "median_abs_rate_error_pct": quantile(rate, 0.5),
            "estimate_from": "volume and rate: the incident's last alert (its close alert when it closed); "
            "location: its last alert that carried one",
        },
        "leaks": {
            "events": len(leaks),
            "caught": sum(1 for r in leaks if r["caught"]),
            "median_minutes_to_alarm": quantile(
                [float(r["minutes_to_alarm"]) for r in leaks if r["caught"]], 0.5
            ),
        },
        "meter_faults": {
            "flow_or_level_faults": len(faults),
            "reported": sum(1 for f in faults if f["reported"]),
            "with_tap_alarm": sum(1 for f in faults if f["tap_alarms_during"]),
            "spurious_meter_fault_incidents": len(tally.spurious_meter_faults),
            "by_subtype": {
                kind: {
                    "faults": sum(1 for f in faults if f["subtype"] == kind),
                    "reported": sum(1 for f in faults if f["subtype"] == kind and f["reported"]),
                }
                for kind in sorted({str(f["subtype"]) for f in faults})
            },
        },
    }
