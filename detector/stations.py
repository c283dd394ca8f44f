"""The service's station table: which readings are admitted, which windows close, and when.

Pure: no Kafka, no metrics. ``detector.engine.Engine`` hands every parsed reading to
``StationTable.admit`` and decides what the closed windows become; the rules live here so they are
unit-tested without a broker:

- **admission**: a reading stamped more than ``max_future_s`` ahead of its arrival is refused
  (``future_timestamp``: one bad clock would push the station's watermark into the future); a key
  that is not the station id is refused (``key_mismatch``: the partitioner would scatter a station);
  a station the bundle does not know is refused (``unknown_station``) when ``check_known``.
- **windows**: each station has a ``StationBuffer``; the windows its own watermark closes come back
  from ``admit``. Late and duplicate readings are counted (``take_outcomes``), not refused.
- **gaps**: a gap is cut into at most ``max_gap_windows`` windows (all unscorable); the rest of a
  longer one (a station's first reading a year old, a jump ahead in event time) is skipped and
  counted (``take_gap_skips``), so no input can open more windows than that per reading.
- **idle**: ``close_idle(now_s)`` advances the watermark of every station silent for more than
  ``idle_timeout_s`` of wall time by that silence, so its windows close (as gaps) instead of
  waiting for a reading that may never come.
- **line readings**: an accepted reading of a station the topology knows is kept, reduced to the
  fields its line's balance reads, for ``take_line_readings`` (the service forwards it to the line).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from detector.readings import Reading, format_ts
from detector.records import FUTURE_TIMESTAMP, KEY_MISMATCH, UNKNOWN_STATION
from detector.topology import Topology
from detector.windows import AddOutcome, ClosedWindow, StationBuffer, WindowSpec

_ACCEPTED, _LATE = AddOutcome.ACCEPTED, AddOutcome.LATE
_NO_WINDOWS: list[ClosedWindow] = []  # shared and never mutated: most readings close nothing


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reading was not admitted: ``reason`` is a ``detector.records.DEAD_LETTER_REASONS`` entry."""

    reason: str
    detail: str


# An accepted reading of a line's station: (line_id, station_id, ts as Unix seconds, the values of
# the fields the line's balance reads, in ``StationTable.line_fields`` order). Plain tuples: one is
# made per reading on the hot path.
LineReading = tuple[str, str, float, tuple[float, ...]]


@dataclass(frozen=True, slots=True)
class StationView:
    """What the scrape shows for one station."""

    station_id: str
    score: float | None
    threshold: float | None
    incident_open: bool
    newest_event_s: float | None  # event time of the newest reading, Unix seconds
    last_arrival_s: float | None  # wall time it arrived, Unix seconds
    # (sensor, share of the reconstruction error) of the station's latest incident open/update alert;
    # empty until the station has had one.
    contributions: tuple[tuple[str, float], ...] = ()


class Station:
    """One station's buffer, where its readings come from, and what the scrape shows of it."""

    __slots__ = ("buffer", "contributions", "key", "last_arrival", "partition", "score", "threshold")

    def __init__(self, buffer: StationBuffer, station_id: str, partition: int, arrival: float) -> None:
        self.buffer = buffer
        self.key = station_id.encode()
        self.partition = partition
        self.last_arrival = arrival
        self.score: float | None = None
        self.threshold: float | None = None
        # Of the latest incident open/update alert; replaced whole, so a scrape never sees half of one.
        self.contributions: tuple[tuple[str, float], ...] = ()


class StationTable:
    """Every station this instance serves (see the module docstring for the rules)."""

    def __init__(
        self,
        spec: WindowSpec,
        n_sensors: int,
        *,
        known: Collection[str] = (),
        check_known: bool = False,
        max_future_s: float = 86400.0,
        idle_timeout_s: float = 300.0,
        topology: Topology | None = None,
        max_gap_windows: int | None = None,
    ) -> None:
        """``max_gap_windows``: see ``StationBuffer``; the windows a gap skips beyond it come back
        from ``take_gap_skips``."""
        self.spec = spec
        self._max_gap_windows = max_gap_windows
        self.n_sensors = n_sensors
        self._known = frozenset(known)
        self._check_known = check_known and bool(self._known)
        self._max_future_s = max_future_s
        self._idle_timeout_s = idle_timeout_s
        self._stations: dict[str, Station] = {}
        self._accepted = self._late = self._duplicate = 0
        # station -> its line; the fields a balance reads; the line readings accepted since the last take.
        self._line_of: dict[str, str] = {}
        self.line_fields: tuple[str, ...] = ()
        self._pick: Callable[[dict[str, float]], tuple[float, ...]] = lambda values: ()
        self._line_readings: list[LineReading] = []
        self._off_line = 0  # accepted readings of stations the topology does not know
        if topology is not None:
            self.line_fields = tuple(sorted(topology.required_sensors()))
            getter = operator.itemgetter(*self.line_fields)
            single = len(self.line_fields) == 1
            self._pick = (lambda values: (getter(values),)) if single else getter  # type: ignore[assignment]
            for station_id in topology.station_ids:
                line_id = topology.line_of(station_id)
                assert line_id is not None  # every declared station is on a line
                self._line_of[station_id] = line_id

    def __len__(self) -> int:
        return len(self._stations)

    def get(self, station_id: str) -> Station | None:
        return self._stations.get(station_id)

    def items(self) -> list[tuple[str, Station]]:
        return list(self._stations.items())

    # -- admission (the hot path) ---------------------------------------------------------------
    def admit(
        self, reading: Reading, key: bytes | None, partition: int, arrival_s: float
    ) -> list[ClosedWindow] | Refusal:
        """Place one reading; the windows it closed (usually none), or why it was refused."""
        ts, values = reading.ts, reading.values
        station = self._stations.get(reading.station_id)
        # The usual case, a known station with its own key and a sane stamp, without the call to
        # ``_admission`` (the one rule; it decides every other case).
        if (
            station is not None
            and (key is None or key == station.key)
            and ts.timestamp() <= arrival_s + self._max_future_s
        ):
            station.last_arrival = arrival_s
        else:
            admitted = self._admission(reading, key, partition, arrival_s, arrival_s)
            if admitted.__class__ is Refusal:
                return admitted  # type: ignore[return-value]
            station = admitted  # type: ignore[assignment]
        buffer = station.buffer  # type: ignore[union-attr]
        outcome = buffer.add(ts, list(values.values()))
        if outcome is _ACCEPTED:
            self._accepted += 1
            if self._line_of:
                self._keep_line_reading(reading.station_id, ts, values)
        elif outcome is _LATE:
            self._late += 1
        else:
            self._duplicate += 1
        if buffer.ready:
            return buffer.take_ready()
        return _NO_WINDOWS

    def rebuild(
        self, reading: Reading, key: bytes | None, partition: int, arrival_s: float, produced_s: float
    ) -> list[ClosedWindow] | Refusal:
        """A reading processed before (re-read after an assignment): rebuild its station's buffer.

        Admitted by exactly the rules of ``admit`` (a reading dead-lettered live must not be
        re-ingested by a restart: an unknown station, a forged key, a future stamp); not counted and
        not kept for the line: its line state travels in the state record. The live arrival is not
        recorded: a stamp is judged against ``produced_s``, the message's produce time (no later
        than that arrival, so nothing refused live as from the future passes), or ``arrival_s``
        (now) when that is earlier (a forged produce time).
        """
        station = self._admission(reading, key, partition, arrival_s, min(arrival_s, produced_s))
        if station.__class__ is Refusal:
            return station  # type: ignore[return-value]
        buffer = station.buffer  # type: ignore[union-attr]
        buffer.add(reading.ts, list(reading.values.values()))
        return buffer.take_ready() if buffer.ready else _NO_WINDOWS

    def _admission(
        self, reading: Reading, key: bytes | None, partition: int, arrival_s: float, judged_at_s: float
    ) -> Station | Refusal:
        """The one admission rule of live and rebuilt readings: their station (made on first sight),
        or why the reading is refused; a stamp more than ``max_future_s`` after ``judged_at_s`` is."""
        ts = reading.ts
        if ts.timestamp() > judged_at_s + self._max_future_s:
            return Refusal(FUTURE_TIMESTAMP, f"ts {format_ts(ts)} is ahead of the clock")
        station_id = reading.station_id
        station = self._stations.get(station_id)
        if station is None:
            if key is not None and key != station_id.encode():
                return Refusal(KEY_MISMATCH, f"key {key[:40]!r} is not the station id")
            if self._check_known and station_id not in self._known:
                return Refusal(UNKNOWN_STATION, station_id)
            return self._new(station_id, partition, arrival_s)
        if key is not None and key != station.key:
            return Refusal(KEY_MISMATCH, f"key {key[:40]!r} is not the station id")
        station.last_arrival = arrival_s
        return station

    def _new(self, station_id: str, partition: int, arrival_s: float) -> Station:
        buffer = StationBuffer(self.spec, self.n_sensors, self._max_gap_windows)
        station = Station(buffer, station_id, partition, arrival_s)
        self._stations[station_id] = station
        return station

    def _keep_line_reading(self, station_id: str, ts: datetime, values: dict[str, float]) -> None:
        line_id = self._line_of.get(station_id)
        if line_id is None:
            self._off_line += 1
            return
        self._line_readings.append((line_id, station_id, ts.timestamp(), self._pick(values)))

    def take_outcomes(self) -> dict[str, int]:
        """Readings accepted, late and duplicate since the last call."""
        counts = {"accepted": self._accepted, "late": self._late, "duplicate": self._duplicate}
        self._accepted = self._late = self._duplicate = 0
        return counts

    def take_line_readings(self) -> list[LineReading]:
        """Accepted readings of stations on a declared line since the last call, in arrival order."""
        taken, self._line_readings = self._line_readings, []
        return taken

    def take_off_line(self) -> int:
        """Accepted readings of stations the topology does not know (scored per station only) since
        the last call; always 0 without a topology."""
        taken, self._off_line = self._off_line, 0
        return taken

    def is_on_a_line(self, station_id: str) -> bool:
        return station_id in self._line_of

    # -- the idle clock -------------------------------------------------------------------------
    def close_idle(self, now_s: float) -> list[tuple[str, ClosedWindow]]:
        """The windows that close because their station has been silent for ``idle_timeout_s``."""
        timeout = self._idle_timeout_s
        lateness = self.spec.allowed_lateness
        closed: list[tuple[str, ClosedWindow]] = []
        for station_id, station in self._stations.items():
            silent_for = now_s - station.last_arrival
            if silent_for <= timeout:
                continue
            newest = station.buffer.newest
            if newest is None:
                continue
            watermark = newest + timedelta(seconds=silent_for) - lateness
            closed.extend((station_id, window) for window in station.buffer.close_until(watermark))
        return closed

    def take_gap_skips(self) -> list[tuple[str, int, int]]:
        """``(station, windows skipped, gaps that began skipping)`` of every station whose gaps
        outgrew ``max_gap_windows`` since the last call (off the hot path: call it with ``close_idle``)."""
        skips = []
        for station_id, station in self._stations.items():
            windows, gaps = station.buffer.take_skipped()
            if windows:
                skips.append((station_id, windows, gaps))
        return skips

    # -- ownership ------------------------------------------------------------------------------
    def drop_partitions(self, partitions: Collection[int]) -> list[str]:
        """Forget every station read from ``partitions``; returns their ids."""
        gone = [sid for sid, station in self._stations.items() if station.partition in partitions]
        for station_id in gone:
            del self._stations[station_id]
        return gone

    def partitions(self) -> set[int]:
        return {station.partition for station in self._stations.values()}

    # -- what decisions leave behind, and the scrape --------------------------------------------
    def note_score(self, station_id: str, score: float, threshold: float) -> None:
        station = self._stations.get(station_id)
        if station is not None:
            station.score, station.threshold = score, threshold

    def note_contributions(self, station_id: str, contributions: tuple[tuple[str, float], ...]) -> None:
        station = self._stations.get(station_id)
        if station is not None:
            station.contributions = contributions

    def views(self, incident_open: Callable[[str], bool]) -> Iterator[StationView]:
        """One view per station; safe from the scrape thread (iterates a copy)."""
        # list() copies in one C call, so the scrape thread never iterates a dict being resized.
        for station_id, station in list(self._stations.items()):
            newest = station.buffer.newest
            yield StationView(
                station_id=station_id,
                score=station.score,
                threshold=station.threshold,
                incident_open=incident_open(station_id),
                newest_event_s=None if newest is None else newest.timestamp(),
                last_arrival_s=station.last_arrival,
                contributions=station.contributions,
            )
