"""From closed windows and their scores to alerts and score records; and the links between events.

Pure: no topic names, no Kafka; ``detector.engine.Engine`` calls it. ``decide`` is the step after
scoring: every closed window, in the order it closed (event-time order per station), goes through
the incident tracker: a scored window through ``observe``, an unscorable one (or a silent
station's) through ``gap``. Windows re-read to rebuild state move the tracker and the station's
last score but publish nothing.

Linking: a tap on a segment also disturbs the stations at its ends, so their autoencoder may open
an incident for the same event. ``link_station_alerts`` puts the open tap incidents of a segment
into the ``related`` of a station incident's open/update alert at either end; ``link_tap_alerts``
does the reverse for a tap's open/update alert, with the station incidents open at its ends. An
operator then sees one event, linked, not two unrelated alarms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from detector.bundle import ScoreBatch
from detector.incidents import Alert, IncidentTracker, WindowVerdict
from detector.records import STATION_SILENT, encode_score
from detector.windows import ClosedWindow

_LINKED_STATUSES = frozenset({"open", "update"})


@dataclass(slots=True)
class Pending:
    """A closed window waiting for its decision."""

    station_id: str
    window: ClosedWindow
    produced_ms: int  # produce time of the reading that closed it; -1 when the idle clock did
    rebuild: bool  # re-read to rebuild state: decide, publish nothing
    silent: bool = False  # closed by the idle clock: the station went silent


@dataclass(slots=True)
class Decision:
    """What one window decided: its alerts, its score (None: skipped) and, if asked, its score record."""

    station_id: str
    alerts: list[Alert]
    score: float | None
    skip_reason: str | None
    record: bytes | None
    produced_ms: int
    rebuild: bool


@dataclass(frozen=True, slots=True)
class Model:
    """What ``decide`` needs of the serving bundle."""

    threshold: float
    model_version: str
    sensors: tuple[str, ...]
    window_length: timedelta
    station_thresholds: Mapping[str, float] = field(default_factory=dict)

    def threshold_for(self, station_id: str) -> float:
        return self.station_thresholds.get(station_id, self.threshold)


@dataclass(slots=True)
class Decisions:
    """``decide``'s result: one ``Decision`` per window, in input order, and the batch's counts."""

    items: list[Decision] = field(default_factory=list)
    scored: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def scorable(pending: Sequence[Pending]) -> list[Pending]:
    """The windows that need a score (in order): ``Bundle.score`` them in one batch for ``decide``."""
    return [item for item in pending if item.window.data is not None]


def decide(
    pending: Sequence[Pending],
    scores: ScoreBatch | None,
    tracker: IncidentTracker,
    model: Model,
    *,
    records: bool = False,
) -> Decisions:
    """Run every window of ``pending`` through ``tracker``; ``scores`` holds one row per
    ``scorable(pending)`` window, in that order. ``records``: also encode each published score."""
    values = [] if scores is None else scores.scores.tolist()
    shares = [] if scores is None else scores.contributions.tolist()
    shared, own, version, sensors, length = (
        model.threshold,
        model.station_thresholds,
        model.model_version,
        model.sensors,
        model.window_length,
    )
    out = Decisions()
    position = 0
    for item in pending:
        station_id, window = item.station_id, item.window
        threshold = own.get(station_id, shared) if own else shared
        start = window.end - length
        record = None
        if window.data is not None:
            score = values[position]
            contributions = dict(zip(sensors, shares[position], strict=True))
            position += 1
            verdict = WindowVerdict(station_id, start, window.end, threshold, version, score, contributions)
            alerts = tracker.observe(verdict)
            skip = None
            if not item.rebuild:
                out.scored += 1
                if records:
                    record = encode_score(station_id, window.end, score, threshold, version)
        else:
            score = None
            skip = window.skip_reason or "unscorable"
            reason = STATION_SILENT if item.silent else skip
            alerts = tracker.gap(WindowVerdict(station_id, start, window.end, threshold, version), reason)
            if not item.rebuild:
                out.skipped[skip] = out.skipped.get(skip, 0) + 1
        out.items.append(Decision(station_id, alerts, score, skip, record, item.produced_ms, item.rebuild))
    return out


def _with_related(alert: Alert, related: Iterable[str]) -> Alert:
    merged = sorted(set(alert.related).union(related))
    if merged == alert.related:
        return alert
    return alert.model_copy(update={"related": merged})


def taps_by_station(open_taps: Iterable[tuple[str, str, str]]) -> dict[str, list[str]]:
    """Open tap incidents ``(incident_id, upstream, downstream)`` by the stations at their ends."""
    taps_at: dict[str, list[str]] = {}
    for incident, upstream, downstream in open_taps:
        taps_at.setdefault(upstream, []).append(incident)
        taps_at.setdefault(downstream, []).append(incident)
    return taps_at


def link_station_alerts(alerts: Sequence[Alert], taps_at: Mapping[str, Sequence[str]]) -> list[Alert]:
    """``alerts`` with each station incident's open/update alert listing the open tap incidents of
    the segments it is an end of (``taps_at``: ``taps_by_station`` of the line monitors' open taps)."""
    out = []
    for alert in alerts:
        taps = taps_at.get(alert.station_id)
        linked = taps and alert.kind == "incident" and alert.status in _LINKED_STATUSES
        out.append(_with_related(alert, taps) if linked and taps else alert)
    return out


def open_station_incidents(tracker: IncidentTracker, stations: Iterable[str]) -> dict[str, str]:
    """The incident id open at each of ``stations`` that has one (from the tracker's state)."""
    wanted = set(stations)
    states = tracker.snapshot()["stations"]
    out: dict[str, str] = {}
    for station_id in wanted:
        incident = (states.get(station_id) or {}).get("incident")
        if incident is not None:
            out[station_id] = str(incident["incident_id"])
    return out


def link_tap_alerts(alerts: Sequence[Alert], incidents_at: Mapping[str, str]) -> list[Alert]:
    """``alerts`` with each tap's open/update alert listing the station incidents open at its ends."""
    out = []
    for alert in alerts:
        segment = alert.segment
        if alert.kind == "tap" and segment is not None and alert.status in _LINKED_STATUSES:
            related = [incidents_at[s] for s in (segment.upstream, segment.downstream) if s in incidents_at]
            out.append(_with_related(alert, related) if related else alert)
        else:
            out.append(alert)
    return out
