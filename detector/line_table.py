"""The service's lines: one ``detector.line.LineMonitor`` per line this instance balances, fed in
event-time order.

A line's stations arrive from different partitions, and with a backlog (a restart, a replay, a slow
instance) one partition can run hours ahead of another. A monitor fed in arrival order would see the
slower station as silent and its readings as late. So readings wait here, per station, and are
released to the monitor in ``(ts, station)`` order up to the oldest "newest reading" among the line's
stations (Kafka Streams chooses its next record the same way, by the smallest timestamp across its
inputs). A station that has said nothing for ``idle_timeout_s`` of wall time stops holding its line
back (the monitor then sees it silent and says so, as it would live); a station not heard from yet
holds its line back for ``idle_timeout_s`` from when the line's first reading arrived.

Released that way, a live monitor sees what ``detector.line.offline.line_alerts`` sees for the same
readings in event-time order, whatever the partitioning and the batch boundaries.

``snapshot(line)`` / ``restore(line, state)`` carry a line to another instance: the monitor's own
snapshot plus the readings still waiting (they were consumed, and their offsets committed).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from detector.errors import DataError
from detector.incidents import Alert
from detector.line import LineCalibration, LineMonitor, SegmentView
from detector.topology import TOPOLOGY_FORMAT, Topology

LINE_STATE_VERSION = 1


class Monitor(Protocol):
    """What the table needs of a ``LineMonitor`` (tests may pass a fake with the same methods)."""

    def add_row(
        self, station_id: str, seconds: float, fields: tuple[str, ...], values: tuple[float, ...]
    ) -> bool: ...
    def advance(self) -> list[Alert]: ...
    def open_incidents(self) -> int: ...
    def open_taps(self) -> Iterator[tuple[str, str, str]]: ...
    def views(self) -> Iterator[SegmentView]: ...
    def snapshot(self) -> dict[str, Any]: ...
    def restore(self, snapshot: Mapping[str, Any]) -> None: ...


MonitorFactory = Callable[[Topology, LineCalibration, str, Callable[[], datetime]], Monitor]


def line_monitor(
    topology: Topology, calibration: LineCalibration, model_version: str, clock: Callable[[], datetime]
) -> Monitor:
    """The real monitor (the default factory)."""
    return LineMonitor(topology, calibration, model_version=model_version, clock=clock)


# A waiting reading: (ts as Unix seconds, its fields, its values in that order). Plain tuples, as
# the line record carries them: nothing is built per reading between the record and the monitor.
Waiting = tuple[float, tuple[str, ...], tuple[float, ...]]
_BY_TIME_AND_STATION = operator.itemgetter(0, 1)
_LATEST_S = 253402300799.0  # 9999-12-31T23:59:59Z


@dataclass(slots=True)
class _Line:
    monitor: Monitor
    stations: tuple[str, ...]
    started_s: float | None = None  # wall time of the line's first reading (this instance)


class LineTable:
    """Every line of ``topology`` this instance owns (all of them until told otherwise)."""

    def __init__(
        self,
        topology: Topology,
        calibration: LineCalibration,
        *,
        model_version: str,
        idle_timeout_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monitor_factory: MonitorFactory = line_monitor,
    ) -> None:
        self.topology = topology
        self.calibration = calibration
        self.model_version = model_version
        self._idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._factory = monitor_factory
        self._lines: dict[str, _Line] = {}
        # station -> readings waiting for the line to catch up, in arrival order
        self._waiting: dict[str, list[Waiting]] = {}
        self._newest: dict[str, float] = {}  # station -> its newest reading (Unix seconds)
        self._heard: dict[str, float] = {}  # station -> wall time of its last reading
        self._changed: set[str] = set()
        self.fed = 0  # readings handed to a monitor since the last take_fed

    def line_ids(self) -> list[str]:
        return [line.id for line in self.topology.lines]

    def _line(self, line_id: str) -> _Line:
        line = self._lines.get(line_id)
        if line is None:
            # Each monitor sees its own line only: a monitor's work per call grows with its topology.
            decl = next(decl for decl in self.topology.lines if decl.id == line_id)
            own = Topology.from_dict({"format": TOPOLOGY_FORMAT, "line": [decl.model_dump(mode="json")]})
            segments = {s.segment_id: self.calibration.segments[s.segment_id] for s in own.segments}
            calibration = replace(self.calibration, segments=segments)
            monitor = self._factory(own, calibration, self.model_version, self._clock)
            line = _Line(monitor, tuple(station.id for station in decl.station))
            self._lines[line_id] = line
        return line

    # -- readings in, alerts out ---------------------------------------------------------------
    def add_rows(
        self,
        line_id: str,
        fields: tuple[str, ...],
        rows: Iterable[tuple[str, float, tuple[float, ...]]],
        arrival_s: float,
    ) -> None:
        """Accepted readings ``(station_id, ts as Unix seconds, values in ``fields`` order)`` of
        stations of ``line_id`` (a line record's rows); they wait until ``release``."""
        line = self._line(line_id)
        if line.started_s is None:
            line.started_s = arrival_s
        waiting, newest, heard = self._waiting, self._newest, self._heard
        for station_id, ts, values in rows:
            queue = waiting.get(station_id)
            if queue is None:
                waiting[station_id] = [(ts, fields, values)]
            else:
                queue.append((ts, fields, values))
            last = newest.get(station_id)
            if last is None or ts > last:
                newest[station_id] = ts
            heard[station_id] = arrival_s
        self._changed.add(line_id)

    def release(self, now_s: float) -> list[Alert]:
        """Feed every line's monitor what all its stations have caught up to; the alerts that follow."""
        alerts: list[Alert] = []
        all_waiting, newest = self._waiting, self._newest
        for line_id, line in self._lines.items():
            bound = self._bound(line, now_s)
            if bound is None:
                continue
            ready: list[tuple[float, str, tuple[str, ...], tuple[float, ...]]] = []
            for station_id in line.stations:
                waiting = all_waiting.get(station_id)
                if not waiting:
                    continue
                if newest.get(station_id, math.inf) <= bound:  # all of it (the usual case)
                    ready += [(ts, station_id, fields, values) for ts, fields, values in waiting]
                    all_waiting[station_id] = []
                    continue
                ready += [(ts, station_id, fields, values) for ts, fields, values in waiting if ts <= bound]
                all_waiting[station_id] = [item for item in waiting if item[0] > bound]
            if not ready:
                continue
            ready.sort(key=_BY_TIME_AND_STATION)  # stable: a duplicate keeps its arrival order
            add, advance = line.monitor.add_row, line.monitor.advance
            # Advance after every reading, as the offline oracle does: the monitor settles a minute
            # as soon as both ends have it, so when it is asked decides what it sees (re-slotting,
            # late skew corrections). Per reading, the alerts depend on the readings alone. A refused
            # reading (a duplicate, too late) changes nothing: advancing after it would find nothing.
            for ts, station_id, fields, values in ready:
                if add(station_id, ts, fields, values):
                    alerts += advance()
            self.fed += len(ready)
            self._changed.add(line_id)
        return alerts

    def _bound(self, line: _Line, now_s: float) -> float | None:
        """Up to when (Unix seconds) a line's readings can go to its monitor: the oldest newest
        reading among its stations that are not silent; None while a station not heard yet may
        still come."""
        timeout = self._idle_timeout_s
        bound: float | None = None
        for station_id in line.stations:
            heard = self._heard.get(station_id)
            if heard is None:
                if line.started_s is not None and now_s - line.started_s <= timeout:
                    return None
                continue
            if now_s - heard > timeout:
                continue  # silent: it no longer holds the line back
            newest = self._newest[station_id]
            if bound is None or newest < bound:
                bound = newest
        if bound is None:  # every station silent: release what waits
            waiting = [item[0] for sid in line.stations for item in self._waiting.get(sid, ())]
            return max(waiting) if waiting else None
        return bound

    # -- what other decisions and the scrape read ------------------------------------------------
    def open_taps(self) -> list[tuple[str, str, str]]:
        return [tap for line in self._lines.values() for tap in line.monitor.open_taps()]

    def open_incidents(self) -> int:
        return sum(line.monitor.open_incidents() for line in self._lines.values())

    def views(self) -> Iterator[SegmentView]:
        for line in list(self._lines.values()):
            yield from line.monitor.views()

    def take_fed(self) -> int:
        fed, self.fed = self.fed, 0
        return fed

    # -- state -----------------------------------------------------------------------------------
    def take_changed(self) -> list[str]:
        """Lines whose state moved since the last call (their state record is due)."""
        changed, self._changed = sorted(self._changed), set()
        return changed

    def snapshot(self, line_id: str) -> dict[str, Any]:
        line = self._line(line_id)
        return {
            "version": LINE_STATE_VERSION,
            "monitor": line.monitor.snapshot(),
            # Unix seconds, not date strings: a snapshot is written in every batch that moves its line.
            "waiting": {
                sid: [
                    [ts, dict(zip(fields, values, strict=True))] for ts, fields, values in self._waiting[sid]
                ]
                for sid in line.stations
                if self._waiting.get(sid)
            },
            "newest": {sid: self._newest[sid] for sid in line.stations if sid in self._newest},
        }

    def restore(self, line_id: str, state: Mapping[str, Any], now_s: float) -> None:
        """Continue ``line_id`` from a ``snapshot`` (another instance's); ``DataError`` if malformed."""
        if state.get("version") != LINE_STATE_VERSION:
            raise DataError(
                f"line state {line_id!r}: version {state.get('version')!r} is not {LINE_STATE_VERSION}"
            )
        self.drop([line_id])
        line = self._line(line_id)
        try:
            line.monitor.restore(state["monitor"])
            for station_id, items in dict(state.get("waiting", {})).items():
                self._waiting[str(station_id)] = [
                    (_seconds(ts), tuple(str(k) for k in values), tuple(float(v) for v in values.values()))
                    for ts, values in items
                ]
            for station_id, ts in dict(state.get("newest", {})).items():
                self._newest[str(station_id)] = _seconds(ts)
                self._heard[str(station_id)] = now_s
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            self.drop([line_id])
            raise DataError(f"line state {line_id!r} is malformed: {error!r}") from error
        line.started_s = now_s

    def drop(self, line_ids: Iterable[str]) -> None:
        """Forget these lines (their owner moved elsewhere)."""
        for line_id in line_ids:
            line = self._lines.pop(line_id, None)
            if line is None:
                continue
            for station_id in line.stations:
                self._waiting.pop(station_id, None)
                self._newest.pop(station_id, None)
                self._heard.pop(station_id, None)
            self._changed.discard(line_id)


def _seconds(value: object) -> float:
    if type(value) not in (float, int) or not 0 <= value <= _LATEST_S:  # type: ignore[operator]
        raise ValueError(f"expected Unix seconds, got {value!r}")
    return float(value)  # type: ignore[arg-type]  # checked above
