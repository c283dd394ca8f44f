"""From window scores to alerts: one incident per event, not one alert per overlapping window.

Per station, in event time (the windows' ends), never wall time, so a replay gives the same alerts:

- **open**: when ``k`` of the last ``n`` scored windows reach the threshold.
- **update**: while open, a window at or above the threshold re-reports, at most once per
  ``update_every`` of event time.
- **close**: after ``close_after`` consecutive windows below ``threshold × hysteresis``. Windows
  between that level and the threshold keep the incident open without an update. The close alert
  carries the last window's score and the incident's peak severity.
- **max length**: an incident open for ``max_length`` of event time (default 12 h) closes with
  reason ``max_length``, so a drifting station is not stuck in one incident for weeks. The station
  then re-arms above its drifted level: a new incident needs a score of at least ``rearm_margin``
  times the closed incident's peak score (and the threshold), so a real event on top of the drift is
  still raised (reason ``above_drift_level``) while the drift alone is not re-reported at once. The
  raised level is dropped once the station is quiet again (``close_after`` windows below
  ``threshold × hysteresis``).
- **data_gap**: a window that can't be scored (or a station that went silent) opens a gap alert
  (``kind = data_gap``), closed by the next scored window, so silence is never mistaken for health.
  One open (and one close) per gap whatever its length: no input can make the alert count grow
  with the span of event time it covers.

``alert_id`` is a hash of (station, kind, status, window_end, model_version): the same input always
yields the same id, which lets consumers deduplicate after a replay. ``incident_id`` hashes the
station, kind, the opening window's end and the model version.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from detector.clock import SYSTEM_CLOCK, WallClock
from detector.errors import ConfigError, DataError
from detector.readings import format_ts

ALERT_SCHEMA = 1
SEVERITIES: tuple[str, ...] = ("low", "medium", "high")
STATE_VERSION = 1
_ID_CHARS = 32  # 128 bits of SHA-256: unique enough, short enough for a log line

# incident / data_gap: one station's windows (the autoencoder). tap / meter_fault: a segment of a
# declared line (detector.line), with ``segment`` set; meter_fault also names ``sensor``.
Kind = Literal["incident", "data_gap", "tap", "meter_fault"]
Status = Literal["open", "update", "close"]
Severity = Literal["none", "low", "medium", "high"]


@dataclass(frozen=True, slots=True)
class IncidentPolicy:
    """How scores become incidents; see the module docstring."""

    k: int = 1
    n: int = 1
    hysteresis: float = 0.8
    close_after: int = 2
    update_every: timedelta = timedelta(minutes=15)
    severity_bands: tuple[float, float, float] = (1.0, 1.5, 3.0)
    max_length: timedelta | None = timedelta(hours=12)
    rearm_margin: float = 1.5

    def __post_init__(self) -> None:
        if self.max_length is not None and self.max_length <= timedelta(0):
            raise ConfigError(f"max_length must be positive (or None for no limit), got {self.max_length}")
        if not (math.isfinite(self.rearm_margin) and self.rearm_margin >= 1):
            raise ConfigError(f"rearm_margin must be at least 1, got {self.rearm_margin}")
        if not 1 <= self.k <= self.n:
            raise ConfigError(f"incident policy needs 1 <= k <= n, got k={self.k}, n={self.n}")
        if self.n > 64:
            raise ConfigError(f"incident policy n must be at most 64, got {self.n}")
        if not 0 < self.hysteresis <= 1:
            raise ConfigError(f"hysteresis must be in (0, 1], got {self.hysteresis}")
        if self.close_after < 1:
            raise ConfigError(f"close_after must be at least 1, got {self.close_after}")
        if self.update_every < timedelta(0):
            raise ConfigError("update_every must not be negative")
        bands = self.severity_bands
        if len(bands) != 3 or not 0 < bands[0] <= bands[1] <= bands[2]:
            raise ConfigError(f"severity_bands must be three increasing positive ratios, got {bands}")

    def severity(self, score: float, threshold: float) -> Severity:
        ratio = score / threshold if threshold > 0 else float("inf")
        low, medium, high = self.severity_bands
        if ratio >= high:
            return "high"
        if ratio >= medium:
            return "medium"
        if ratio >= low:
            return "low"
        return "none"


class Contribution(BaseModel):
    model_config = ConfigDict(frozen=True)

    sensor: str
    share: float


class SegmentRef(BaseModel):
    """Where on the line a segment alert is: the segment and both its stations."""

    model_config = ConfigDict(frozen=True)

    line_id: str
    segment_id: str
    upstream: str
    downstream: str
    length_km: float


class TapEstimate(BaseModel):
    """What a tap incident says about the extraction so far (m³/h, m³, km from upstream)."""

    model_config = ConfigDict(frozen=True)

    rate_m3h: float
    volume_m3: float
    location_km: float | None
    location_sigma_km: float | None
    onset: AwareDatetime


class Alert(BaseModel):
    """The alert wire message (JSON on the alerts topic, key = station_id).

    Segment alerts (``kind`` tap / meter_fault) carry ``segment``; their ``station_id`` is the
    segment's upstream station (so the key still names a station), ``window_start`` the estimated
    onset and ``window_end`` the minute of the decision; ``score`` / ``threshold`` are the
    sequential test's statistic and limit. ``related`` lists incident ids of other alerts that
    describe the same event (a station incident on either end of a tapped segment).
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: int = Field(default=ALERT_SCHEMA, alias="schema")
    alert_id: str
    incident_id: str
    kind: Kind
    status: Status
    station_id: str
    window_start: AwareDatetime
    window_end: AwareDatetime
    score: float | None
    threshold: float
    severity: Severity
    contributions: list[Contribution]
    model_version: str
    emitted_at: AwareDatetime
    reason: str | None = None
    segment: SegmentRef | None = None
    estimate: TapEstimate | None = None
    evidence: dict[str, float] | None = None
    sensor: str | None = None
    related: list[str] = Field(default_factory=list)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:_ID_CHARS]


def alert_id(station_id: str, kind: str, status: str, window_end: datetime, model_version: str) -> str:
    return _digest(station_id, kind, status, format_ts(window_end), model_version)


def incident_id(station_id: str, kind: str, opened_at: datetime, model_version: str) -> str:
    return _digest("incident-id", station_id, kind, format_ts(opened_at), model_version)


def ranked_contributions(contributions: Mapping[str, float]) -> list[Contribution]:
    """Largest share first; ties by sensor name so the order is deterministic."""
    ordered = sorted(contributions.items(), key=lambda item: (-item[1], item[0]))
    return [Contribution(sensor=name, share=float(share)) for name, share in ordered]


@dataclass(frozen=True, slots=True)
class WindowVerdict:
    """One station's window as the tracker judges it: its bounds (aware, ``start`` < ``end``), the
    threshold and model version it was judged by, and its score (None: the window could not be
    scored) with each sensor's share of it (empty for an unscored window)."""

    station_id: str
    start: datetime
    end: datetime
    threshold: float
    model_version: str
    score: float | None = None
    contributions: Mapping[str, float] = field(default_factory=dict)


_SEVERITY_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}


class _Episode:
    """An open incident or data gap of one station."""

    __slots__ = ("below", "incident_id", "last_report", "opened_at", "peak", "peak_score")

    def __init__(
        self, incident_id: str, opened_at: datetime, peak: Severity, peak_score: float = 0.0
    ) -> None:
        self.incident_id = incident_id
        self.opened_at = opened_at
        self.last_report = opened_at
        self.below = 0
        self.peak: Severity = peak
        self.peak_score = peak_score

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "opened_at": format_ts(self.opened_at),
            "last_report": format_ts(self.last_report),
            "below": self.below,
            "peak": self.peak,
            "peak_score": self.peak_score,
        }

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> _Episode:
        episode = cls(str(fields["incident_id"]), _parse_ts(fields["opened_at"]), fields["peak"])
        episode.last_report = _parse_ts(fields["last_report"])
        episode.below = int(fields["below"])
        episode.peak_score = float(fields.get("peak_score", 0.0))
        return episode


def _parse_ts(text: object) -> datetime:
    if not isinstance(text, str):
        raise DataError(f"incident state: expected a timestamp string, got {text!r}")
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is None:
        raise DataError(f"incident state: naive timestamp {text!r}")
    return ts.astimezone(UTC)


class _StationState:
    __slots__ = ("gap", "incident", "quiet", "rearm_level", "recent")

    def __init__(self) -> None:
        self.recent = 0  # the last n windows as bits, newest in bit 0, 1 = at or above threshold
        self.incident: _Episode | None = None
        self.gap: _Episode | None = None
        # After a max-length close: the score a new incident needs, until the station is quiet.
        self.rearm_level: float | None = None
        self.quiet = 0

    def idle(self) -> bool:
        return self.recent == 0 and self.incident is None and self.gap is None and self.rearm_level is None


def _counts_as_above(state: _StationState, policy: IncidentPolicy, score: float, threshold: float) -> bool:
    """Whether a window may open an incident: at or above the threshold, and above the re-arm level
    a max-length close left (``rearm_level``), which is dropped after ``close_after`` quiet windows."""
    if state.rearm_level is None:
        return score >= threshold
    if score < threshold * policy.hysteresis:
        state.quiet += 1
        if state.quiet >= policy.close_after:
            state.rearm_level, state.quiet = None, 0
        return False
    state.quiet = 0
    return score >= state.rearm_level


class IncidentTracker:
    """Per-station incident and data-gap state; feed it windows in event-time order per station."""

    def __init__(self, policy: IncidentPolicy | None = None, clock: WallClock = SYSTEM_CLOCK) -> None:
        """``clock`` stamps each alert's ``emitted_at``; every rule runs on event time alone."""
        self.policy = policy or IncidentPolicy()
        self._clock = clock
        self._stations: dict[str, _StationState] = {}

    # -- queries ---------------------------------------------------------------------------
    def open_incidents(self) -> int:
        return sum(1 for state in self._stations.values() if state.incident is not None)

    def is_open(self, station_id: str) -> bool:
        state = self._stations.get(station_id)
        return state is not None and state.incident is not None

    def has_gap(self, station_id: str) -> bool:
        state = self._stations.get(station_id)
        return state is not None and state.gap is not None

    # -- events ----------------------------------------------------------------------------
    def observe(self, verdict: WindowVerdict) -> list[Alert]:
        """One scored window in; the alerts it causes out (often none).

        A non-finite score (a model fed values it can't handle) is not evidence of health or of an
        incident: it is reported as a data gap with reason ``score_not_finite``. A verdict without
        a score is a caller's error (``ValueError``): an unscored window goes to ``gap``.
        """
        score = verdict.score
        if score is None:
            raise ValueError(
                f"observe needs a scored window (station {verdict.station_id!r}, end "
                f"{format_ts(verdict.end)} has score None); report an unscored one with gap()"
            )
        if not math.isfinite(score):
            return self.gap(verdict, "score_not_finite")
        policy, threshold, window_end = self.policy, verdict.threshold, verdict.end
        state = self._stations.get(verdict.station_id) or _StationState()
        alerts: list[Alert] = []

        if state.gap is not None:
            gap = state.gap
            alerts.append(self._alert(verdict, "data_gap", "close", gap, gap.peak, reason="data_resumed"))
            state.gap = None

        above = score >= threshold
        severity = policy.severity(score, threshold)
        episode = state.incident
        if episode is None:
            above = _counts_as_above(state, policy, score, threshold)
            state.recent = ((state.recent << 1) | int(above)) & ((1 << policy.n) - 1)
            if above and state.recent.bit_count() >= policy.k:
                opened = incident_id(verdict.station_id, "incident", window_end, verdict.model_version)
                episode = _Episode(opened, window_end, severity, score)
                state.incident = episode
                state.recent = 0
                reason = None if state.rearm_level is None else "above_drift_level"
                alerts.append(self._alert(verdict, "incident", "open", episode, severity, reason=reason))
                state.rearm_level = None
        elif score < threshold * policy.hysteresis:
            episode.below += 1
            if episode.below >= policy.close_after:
                alerts.append(self._alert(verdict, "incident", "close", episode, episode.peak))
                state.incident = None
        else:
            episode.below = 0
            if _SEVERITY_RANK[severity] > _SEVERITY_RANK[episode.peak]:
                episode.peak = severity
            if above and window_end - episode.last_report >= policy.update_every:
                episode.last_report = window_end
                alerts.append(self._alert(verdict, "incident", "update", episode, severity))
        if state.incident is not None and state.incident is episode:
            alerts.extend(self._end_if_too_long(state, verdict, score))

        self._keep(verdict.station_id, state)
        return alerts

    def _end_if_too_long(self, state: _StationState, verdict: WindowVerdict, score: float) -> list[Alert]:
        """Close the open incident once it has lasted ``max_length``; re-arm above its peak."""
        episode = state.incident
        max_length = self.policy.max_length
        if episode is None:
            return []
        episode.peak_score = max(episode.peak_score, score)
        if max_length is None or verdict.end - episode.opened_at < max_length:
            return []
        state.incident = None
        state.recent = 0
        state.rearm_level = max(verdict.threshold, episode.peak_score * self.policy.rearm_margin)
        state.quiet = 0
        return [self._alert(verdict, "incident", "close", episode, episode.peak, reason="max_length")]

    def gap(self, verdict: WindowVerdict, reason: str) -> list[Alert]:
        """A window that could not be scored (``reason`` says why; ``verdict.score`` and its
        contributions are ignored); opens a data gap, or extends the open one silently: one
        ``data_gap`` alert per gap (and its close) whatever its length, so a long silence or a jump
        in event time cannot raise an alert per ``update_every`` of it."""
        state = self._stations.get(verdict.station_id) or _StationState()
        alerts: list[Alert] = []
        if state.gap is None:
            opened = incident_id(verdict.station_id, "data_gap", verdict.end, verdict.model_version)
            state.gap = _Episode(opened, verdict.end, "low")
            alerts.append(self._alert(verdict, "data_gap", "open", state.gap, reason=reason))
        self._keep(verdict.station_id, state)
        return alerts

    # -- state -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """All non-trivial station state as plain JSON-able data."""
        stations: dict[str, Any] = {}
        for station_id, state in self._stations.items():
            stations[station_id] = {
                "recent": state.recent,
                "incident": None if state.incident is None else state.incident.to_dict(),
                "gap": None if state.gap is None else state.gap.to_dict(),
                "rearm_level": state.rearm_level,
                "quiet": state.quiet,
            }
        return {"version": STATE_VERSION, "stations": stations}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace all state with a ``snapshot()``'s."""
        if snapshot.get("version") != STATE_VERSION:
            raise DataError(f"incident state version {snapshot.get('version')!r} is not {STATE_VERSION}")
        stations: dict[str, _StationState] = {}
        try:
            for station_id, fields in snapshot["stations"].items():
                state = _StationState()
                state.recent = int(fields["recent"])
                # Absent in snapshots written before incidents had a maximum length.
                level = fields.get("rearm_level")
                state.rearm_level = None if level is None else float(level)
                state.quiet = int(fields.get("quiet", 0))
                if fields.get("incident") is not None:
                    state.incident = _Episode.from_dict(fields["incident"])
                if fields.get("gap") is not None:
                    state.gap = _Episode.from_dict(fields["gap"])
                stations[str(station_id)] = state
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise DataError(f"incident state is malformed: {error!r}") from error
        self._stations = stations

    def forget(self, station_id: str) -> None:
        """Drop a station's state (its partition moved to another instance)."""
        self._stations.pop(station_id, None)

    # -- helpers ---------------------------------------------------------------------------
    def _keep(self, station_id: str, state: _StationState) -> None:
        if state.idle():
            self._stations.pop(station_id, None)
        else:
            self._stations[station_id] = state

    def _alert(
        self,
        verdict: WindowVerdict,
        kind: Kind,
        status: Status,
        episode: _Episode,
        severity: Severity = "low",
        *,
        reason: str | None = None,
    ) -> Alert:
        """One alert about ``verdict``'s window; a data_gap alert carries no score nor contributions."""
        score = None if kind == "data_gap" else verdict.score
        return Alert(
            alert_id=alert_id(verdict.station_id, kind, status, verdict.end, verdict.model_version),
            incident_id=episode.incident_id,
            kind=kind,
            status=status,
            station_id=verdict.station_id,
            window_start=verdict.start,
            window_end=verdict.end,
            score=None if score is None else float(score),
            threshold=float(verdict.threshold),
            severity=severity,
            contributions=[] if score is None else ranked_contributions(verdict.contributions),
            model_version=verdict.model_version,
            emitted_at=self._clock.now(),
            reason=reason,
        )
