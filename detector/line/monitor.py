"""Streaming segment state for every line of a topology: readings in, tap and meter-fault alerts out.

Time is event time on a one-minute grid (each reading's ``ts`` snapped to the nearest minute). A
line's minute is evaluated once every station of the line has reported it, or once the line's
watermark (newest minute seen minus the line's lateness, from its ``clock_tolerance_s``) has passed
it; a station still missing
then is missing for that minute (its meters go silent, its segments hold after a few minutes).
Per minute: meter validation per station (``meters.py``), then each segment's balance, test and
incident (``segment.py``). Alerts carry deterministic ids (segment or station/sensor, kind, status,
minute, model version), so a replay or a restored monitor raises the same alerts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from detector.errors import DataError
from detector.incidents import Alert, SegmentRef, TapEstimate, alert_id, incident_id
from detector.line.calibration import LineCalibration
from detector.line.meters import StationMeters
from detector.line.segment import NEXT_SEGMENT_HOLD_MINUTES, Decision, SegmentState
from detector.topology import DEFAULT_CLOCK_TOLERANCE_S, Segment, Topology

STATE_VERSION = 2
TS_KEY = "@ts"  # each buffered row keeps its reading's timestamp (epoch seconds) to tell duplicates
_DEGRADING = frozenset({"stuck", "silent"})
DRIFT_SHARE = 0.6  # a gain this share of the limit on one side blocks a tap on the other
# A drift is reported once the mirror image has held this long: a real drift grows over hours, while
# a tap next door or a transient mirrors for a minute or two (seed 7 of the sim suite, 60 days:
# 55 one-minute "drift" reports, 38 of them within 3 h of a tap opening). Blocking the neighbour's
# tap stays immediate; only the operator's alert waits.
DRIFT_CONFIRM_MINUTES = 30
_SEVERITY_BANDS = ((3.0, "high"), (1.5, "medium"), (1.0, "low"))


# How far (minutes) the line's newest minute may run ahead of a station's reading of the same real
# moment before that reading is refused as late. Two clocks D seconds apart stamp one moment up to
# ceil(D / 60) grid minutes apart (snapping to the nearest minute), the re-slotting of a half-minute
# clock adds one more, and a minute is evaluated once the newest minute is ``lateness`` past it, so
# the slow station's reading is still in time when lateness >= ceil(D / 60) + 2. The line's
# ``clock_tolerance_s`` (topology) is D; its default, 90 s (clocks within +-45 s, the simulator's
# default skew), gives 4. With 2 (before), a slow station's every other reading was refused on
# seeds 1001 and 1003 of the study (42 % of EST-05's minutes on 1001), its meters went "silent" for
# weeks and held both its segments. A complete minute is still evaluated as soon as every station
# has it: this only delays a minute a station really misses.
def lateness_for(clock_tolerance_s: float) -> int:
    """The lateness (minutes) a line whose clocks sit up to ``clock_tolerance_s`` apart needs."""
    return 2 + math.ceil(clock_tolerance_s / 60.0)


LATENESS_MINUTES = lateness_for(DEFAULT_CLOCK_TOLERANCE_S)


@dataclass(frozen=True, slots=True)
class SegmentView:
    """What the scrape shows of one segment."""

    segment_id: str
    line_id: str
    balance_m3h: float | None  # latest compensated balance (minute)
    statistic: float | None  # sequential test statistic
    limit: float | None
    degraded: str | None  # why the balance is held (a meter fault, a silent station), or None
    incident_open: bool


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _minute_ts(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


class _MeterFault:
    __slots__ = ("incident_id", "opened", "reason")

    def __init__(self, incident_id: str, opened: int, reason: str) -> None:
        self.incident_id = incident_id
        self.opened = opened
        self.reason = reason


class _Line:
    """One line's buffers, meters and segments."""

    def __init__(
        self,
        line_id: str,
        stations: list[str],
        segments: list[SegmentState],
        fields: dict[str, tuple[str, ...]],
        lateness: int,
    ) -> None:
        self.line_id = line_id
        self.lateness = lateness  # minutes (``lateness_for`` the line's clock tolerance)
        self.stations = stations
        self.segments = segments
        self.fields = fields  # per station: the reading fields any segment reads
        self.pending: dict[int, dict[str, dict[str, float]]] = {}
        self.newest: int | None = None
        self.next: int | None = None
        self.meters: dict[str, StationMeters] = {}
        self.faults: dict[tuple[str, str], _MeterFault] = {}
        self.drifting: dict[tuple[str, str], int] = {}  # unreported drift: consecutive minutes seen
        # Per segment, what each minute asks of the topology, worked out once: its ends, the
        # (station, field) of the meters whose fault holds it, and the next segment if it starts at
        # this one's downstream station (it holds after this one's step).
        self.plan: list[tuple[SegmentState, str, str, tuple[tuple[str, str], ...], SegmentState | None]] = []
        for index, state in enumerate(segments):
            up, down = state.segment.upstream, state.segment.downstream
            holds = (
                (up.id, up.sensor("flow")),
                (down.id, down.sensor("flow")),
                (down.id, down.sensor("tank_level")),
            )
            following = segments[index + 1] if index + 1 < len(segments) else None
            if following is not None and following.segment.upstream.id != down.id:
                following = None
            self.plan.append((state, up.id, down.id, holds, following))


class LineMonitor:
    """Every segment of ``topology``; one instance per line owner (the service keys work by line).

    - ``add(station_id, ts, values)``: one reading (values keyed by reading field); stations the
      topology does not know are ignored (returns False). Duplicates and readings older than the
      lateness are dropped (returns False).
    - ``advance()``: evaluates every minute that all stations of a segment have reported, or that
      the line's watermark (newest minute seen minus the line's lateness) has passed; returns the
      alerts those minutes cause, in event-time order. Each line's lateness follows its declared
      ``clock_tolerance_s`` (``lateness_for``); ``lateness_minutes`` overrides it for every line.
    - ``snapshot()`` / ``restore()``: plain JSON-able state, so another instance continues exactly.
    """

    def __init__(
        self,
        topology: Topology,
        calibration: LineCalibration,
        *,
        model_version: str,
        lateness_minutes: int | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.topology = topology
        self.calibration = calibration
        self.model_version = model_version
        self._clock = clock
        self._lines: dict[str, _Line] = {}
        self._refs: dict[str, SegmentRef] = {}
        # station -> (the fields its rows came in, its line, the (field, index) of what the line reads)
        self._picks: dict[str, tuple[tuple[str, ...], _Line | None, tuple[tuple[str, int], ...]]] = {}
        for line in topology.lines:
            segments = list(topology.segments_of(line.id))
            fields: dict[str, set[str]] = {station.id: set() for station in line.station}
            states = []
            for segment in segments:
                states.append(SegmentState(segment, calibration.segment(segment.segment_id)))
                self._refs[segment.segment_id] = _ref(segment)
                fields[segment.upstream.id].update(
                    segment.upstream.sensor(role)
                    for role in ("flow", "pressure", "suction_pressure", "tank_level")
                )
                fields[segment.downstream.id].update(
                    segment.downstream.sensor(role)
                    for role in ("flow", "tank_level", "suction_pressure", "pressure")
                )
                for meter in segment.decl.meter:
                    fields.setdefault(meter.station_id, set()).add(meter.sensor)
            state = _Line(
                line.id,
                [s.id for s in line.station],
                states,
                {k: tuple(sorted(v)) for k, v in fields.items()},
                lateness_for(line.clock_tolerance_s) if lateness_minutes is None else lateness_minutes,
            )
            downstream_ids = {segment.downstream.id for segment in segments}
            for station in line.station:
                balance_fields = {"flow": station.sensor("flow")}
                if station.tank_area is not None and station.id in downstream_ids:
                    balance_fields["tank_level"] = station.sensor("tank_level")
                state.meters[station.id] = StationMeters(balance_fields, station.sensor("pressure"))
            self._lines[line.id] = state

    # -- input -----------------------------------------------------------------------------------

    def add(self, station_id: str, ts: datetime, values: Mapping[str, float]) -> bool:
        line_id = self.topology.line_of(station_id)
        if line_id is None:
            return False
        line = self._lines[line_id]
        row = {name: float(values[name]) for name in line.fields[station_id] if values.get(name) is not None}
        return self._insert(line, station_id, ts.timestamp(), row)

    def add_row(
        self, station_id: str, seconds: float, fields: tuple[str, ...], values: tuple[float, ...]
    ) -> bool:
        """``add`` of a reading given as Unix seconds and its float values in ``fields`` order (the
        service's line records), without a datetime or a mapping per reading."""
        picked = self._picks.get(station_id)
        # A line record's rows share one ``fields`` tuple: the identity test spares hashing it.
        if picked is None or (picked[0] is not fields and picked[0] != fields):
            line_id = self.topology.line_of(station_id)
            line = None if line_id is None else self._lines[line_id]
            wanted = () if line is None else line.fields[station_id]
            picked = (fields, line, tuple((name, fields.index(name)) for name in wanted if name in fields))
            self._picks[station_id] = picked
        _, line, pick = picked
        if line is None:
            return False
        return self._insert(line, station_id, seconds, {name: values[index] for name, index in pick})

    def _insert(self, line: _Line, station_id: str, seconds: float, row: dict[str, float]) -> bool:
        minute = round(seconds / 60.0)
        if line.next is not None and minute < line.next:
            return False
        row[TS_KEY] = seconds
        rows = line.pending.get(minute)
        if rows is None:
            rows = line.pending[minute] = {}
        elif station_id in rows:
            slot = self._reslot(line, station_id, minute, seconds)
            if slot is None:
                return False
            minute = slot
            rows = line.pending.setdefault(minute, {})
        rows[station_id] = row
        if line.newest is None or minute > line.newest:
            line.newest = minute
        return True

    @staticmethod
    def _reslot(line: _Line, station_id: str, minute: int, seconds: float) -> int | None:
        """Where a second reading of a station in one minute goes, or None for a true duplicate.

        A clock that sits near the half minute stamps one reading just after it and the next just
        before the following one: two readings snap to the same minute and its neighbour gets none.
        The earlier of the two moves to the free neighbour before it (if not yet evaluated), or the
        later one to the free neighbour after it; the same timestamp twice is a duplicate.
        """
        existing = line.pending[minute][station_id]
        if existing.get(TS_KEY) == seconds:
            return None
        before = minute - 1
        earlier = line.pending.get(before)
        if (line.next is None or before >= line.next) and (earlier is None or station_id not in earlier):
            if seconds > existing.get(TS_KEY, seconds):
                line.pending.setdefault(before, {})[station_id] = line.pending[minute].pop(station_id)
                return minute
            line.pending.setdefault(before, {})
            return before
        after = minute + 1
        later = line.pending.get(after)
        if later is None or station_id not in later:
            return after
        return None

    def advance(self) -> list[Alert]:
        alerts: list[Alert] = []
        for line in self._lines.values():
            # Nothing due, the usual case (the service advances after every reading): the next
            # minute is within the lateness and not every station has it yet. ``_advance_line``
            # would stop at once; this saves its call.
            due = line.next
            if due is not None and line.newest is not None and due > line.newest - line.lateness:
                rows = line.pending.get(due)
                if rows is None or len(rows) < len(line.stations):
                    continue
            self._advance_line(line, final=False, out=alerts)
        return alerts

    def flush(self) -> list[Alert]:
        """End of input (offline runs): evaluate every minute still waiting for a late station."""
        alerts: list[Alert] = []
        for line in self._lines.values():
            self._advance_line(line, final=True, out=alerts)
        return alerts

    def _advance_line(self, line: _Line, *, final: bool, out: list[Alert]) -> None:
        if line.newest is None:
            return
        if line.next is None:
            line.next = min(line.pending)
        watermark = line.newest if final else line.newest - line.lateness
        count = len(line.stations)
        while line.next <= line.newest:
            minute = line.next
            rows = line.pending.get(minute)
            if minute > watermark and (rows is None or len(rows) < count):
                break
            line.pending.pop(minute, None)
            self._evaluate(line, minute, rows or {}, out)
            line.next = minute + 1

    # -- one minute of a line ---------------------------------------------------------------------

    def _evaluate(
        self, line: _Line, minute: int, rows: dict[str, dict[str, float]], out: list[Alert]
    ) -> None:
        cleaned: dict[str, dict[str, float]] = {}
        faults_now: dict[tuple[str, str], str] = {}
        for station_id, meters in line.meters.items():
            row, faults = meters.observe(rows.get(station_id))
            cleaned[station_id] = row
            for field, reason in faults.items():
                faults_now[(station_id, field)] = reason
        self._drift_checks(line, faults_now)
        if faults_now or line.faults or line.drifting:
            self._meter_alerts(line, minute, faults_now, out)
        for state, up_id, down_id, holds, following in line.plan:
            degraded: str | None = None
            if faults_now:
                for key in holds:
                    fault = faults_now.get(key)
                    if fault in _DEGRADING:
                        degraded = f"{fault} {key[1]} at {key[0]}"
                        break
            decision = state.step(
                minute, cleaned.get(up_id), cleaned.get(down_id), cleaned, degraded=degraded, pressure_ok=True
            )
            if decision is not None:
                out.append(self._tap_alert(state, minute, decision))
            if following is not None and state.step_started:
                # Segments are evaluated upstream first, so the next one holds from this minute.
                following.hold_after_neighbour_step(NEXT_SEGMENT_HOLD_MINUTES)

    @staticmethod
    def _drift_checks(line: _Line, faults_now: dict[tuple[str, str], str]) -> None:
        """A flow meter reading high by d gives its downstream segment +d and its upstream one -d.

        Product cannot appear in a segment, so a segment whose balance shows a *gain* of the size
        its limit calls significant names the shared station's meter: the neighbour on the other
        side of that station may not open a tap on it (``blocked``), and when that neighbour's own
        statistic is past its limit too, the meter is reported (``drift``). Judged on the previous
        minute's statistics, so the order of the segments does not matter.
        """
        segments = line.segments
        for state in segments:
            state.blocked = False
            state.mirrored = False
        for index, state in enumerate(segments):
            if state.gain < DRIFT_SHARE * state.cal.limit:
                continue
            # A gain on this segment: its upstream meter reads high (the previous segment sees a
            # loss) or its downstream meter reads low (the next segment sees a loss).
            for other, station in (
                (index - 1, state.segment.upstream),
                (index + 1, state.segment.downstream),
            ):
                if not 0 <= other < len(segments):
                    continue
                neighbour = segments[other]
                shared = {neighbour.segment.upstream.id, neighbour.segment.downstream.id}
                if station.id not in shared:
                    continue
                neighbour.blocked = True
                state.mirrored = True
                if neighbour.statistic >= neighbour.cal.limit:
                    faults_now.setdefault((station.id, station.sensor("flow")), "drift")

    def _meter_alerts(
        self, line: _Line, minute: int, faults_now: dict[tuple[str, str], str], out: list[Alert]
    ) -> None:
        for key in sorted(set(line.drifting) | set(faults_now)):
            if key in line.faults or faults_now.get(key) != "drift":
                line.drifting.pop(key, None)
                continue
            seen = line.drifting.get(key, 0) + 1
            if seen < DRIFT_CONFIRM_MINUTES:
                line.drifting[key] = seen
                del faults_now[key]
            else:
                line.drifting.pop(key, None)
        for key in sorted(set(line.faults) | set(faults_now)):
            station_id, field = key
            reason = faults_now.get(key)
            known = line.faults.get(key)
            if reason is not None and known is None:
                opened = _minute_ts(minute)
                name = f"{station_id}/{field}"
                fault = _MeterFault(
                    incident_id(name, "meter_fault", opened, self.model_version), minute, reason
                )
                line.faults[key] = fault
                out.append(self._meter_alert(line, key, fault, "open", minute))
            elif reason is None and known is not None:
                del line.faults[key]
                out.append(self._meter_alert(line, key, known, "close", minute))
            elif reason is not None and known is not None and reason != known.reason and reason in _DEGRADING:
                known.reason = reason

    def _meter_alert(
        self, line: _Line, key: tuple[str, str], fault: _MeterFault, status: str, minute: int
    ) -> Alert:
        station_id, field = key
        segment = next(
            (s.segment for s in line.segments if s.segment.upstream.id == station_id),
            next((s.segment for s in line.segments if s.segment.downstream.id == station_id), None),
        )
        ts = _minute_ts(minute)
        return Alert(
            alert_id=alert_id(f"{station_id}/{field}", "meter_fault", status, ts, self.model_version),
            incident_id=fault.incident_id,
            kind="meter_fault",
            status=status,  # type: ignore[arg-type]
            station_id=station_id,
            window_start=_minute_ts(fault.opened),
            window_end=ts,
            score=None,
            threshold=0.0,
            severity="low",
            contributions=[],
            model_version=self.model_version,
            emitted_at=self._clock(),
            reason=fault.reason,
            segment=None if segment is None else self._refs[segment.segment_id],
            evidence={"minutes": float(minute - fault.opened)},
            sensor=field,
        )

    def _tap_alert(self, state: SegmentState, minute: int, decision: Decision) -> Alert:
        segment = state.segment
        ts = _minute_ts(minute)
        incident = decision.incident
        if decision.status == "open":
            incident.incident_id = incident_id(segment.segment_id, "tap", ts, self.model_version)
        rate, volume = state.estimate(incident)
        location = decision.location
        limit = state.cal.limit
        ratio = incident.peak / limit if limit > 0 else float("inf")
        severity = next((name for band, name in _SEVERITY_BANDS if ratio >= band), "low")
        return Alert(
            alert_id=alert_id(segment.segment_id, "tap", decision.status, ts, self.model_version),
            incident_id=incident.incident_id,
            kind="tap",
            status=decision.status,  # type: ignore[arg-type]
            station_id=segment.upstream.id,
            window_start=_minute_ts(incident.onset),
            window_end=ts,
            score=round(state.statistic, 4),
            threshold=limit,
            severity=severity,  # type: ignore[arg-type]
            contributions=[],
            model_version=self.model_version,
            emitted_at=self._clock(),
            segment=self._refs[segment.segment_id],
            estimate=TapEstimate(
                rate_m3h=round(rate, 3),
                volume_m3=round(volume, 3),
                location_km=None if location is None else round(location[0], 2),
                location_sigma_km=None if location is None else round(location[1], 2),
                onset=_minute_ts(incident.onset),
            ),
            evidence=decision.evidence,
        )

    def segment_states(self) -> Iterator[SegmentState]:
        """Each segment's live state (the trainer reads their traces; the service does not need it)."""
        for line in self._lines.values():
            yield from line.segments

    # -- views -----------------------------------------------------------------------------------

    def open_incidents(self) -> int:
        return sum(
            (state.incident is not None) for line in self._lines.values() for state in line.segments
        ) + sum(len(line.faults) for line in self._lines.values())

    def open_taps(self) -> Iterator[tuple[str, str, str]]:
        """(incident_id, upstream, downstream) of every open tap incident, for linking."""
        for line in self._lines.values():
            for state in line.segments:
                if state.incident is not None:
                    yield state.incident.incident_id, state.segment.upstream.id, state.segment.downstream.id

    def views(self) -> Iterator[SegmentView]:
        for line in self._lines.values():
            for state in line.segments:
                yield SegmentView(
                    segment_id=state.segment.segment_id,
                    line_id=line.line_id,
                    balance_m3h=None if state.balance != state.balance else round(state.balance, 3),
                    statistic=None if state.degraded else round(state.statistic, 4),
                    limit=state.cal.limit,
                    degraded=state.degraded,
                    incident_open=state.incident is not None,
                )

    # -- snapshot --------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        lines: dict[str, Any] = {}
        for line in self._lines.values():
            lines[line.line_id] = {
                "pending": {str(minute): rows for minute, rows in sorted(line.pending.items())},
                "newest": line.newest,
                "next": line.next,
                "meters": {station: meters.to_dict() for station, meters in line.meters.items()},
                "faults": [
                    [station, field, fault.incident_id, fault.opened, fault.reason]
                    for (station, field), fault in sorted(line.faults.items())
                ],
                "segments": {state.segment.segment_id: state.to_dict() for state in line.segments},
                "drifting": [
                    [station, field, seen] for (station, field), seen in sorted(line.drifting.items())
                ],
            }
        return {"version": STATE_VERSION, "model_version": self.model_version, "lines": lines}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Continue from ``snapshot`` (what ``snapshot()`` returned, possibly through JSON)."""
        if snapshot.get("version") != STATE_VERSION:
            raise DataError(f"line state version {snapshot.get('version')!r} is not {STATE_VERSION}")
        try:
            for line_id, data in dict(snapshot["lines"]).items():
                line = self._lines.get(line_id)
                if line is None:
                    continue
                line.pending = {
                    int(minute): {
                        str(s): {str(k): float(v) for k, v in row.items()} for s, row in rows.items()
                    }
                    for minute, rows in data["pending"].items()
                }
                line.newest = None if data["newest"] is None else int(data["newest"])
                line.next = None if data["next"] is None else int(data["next"])
                for station, meters in data["meters"].items():
                    line.meters[station].restore(meters)
                line.faults = {
                    (str(s), str(f)): _MeterFault(str(i), int(o), str(r)) for s, f, i, o, r in data["faults"]
                }
                line.drifting = {(str(s), str(f)): int(n) for s, f, n in data.get("drifting", ())}
                for state in line.segments:
                    state.restore(data["segments"][state.segment.segment_id])
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"line state is malformed: {error!r}") from error


def _ref(segment: Segment) -> SegmentRef:
    return SegmentRef(
        line_id=segment.line_id,
        segment_id=segment.segment_id,
        upstream=segment.upstream.id,
        downstream=segment.downstream.id,
        length_km=segment.length_km,
    )
