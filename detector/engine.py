"""The detector's decisions between two transport calls: readings in, work and outputs out.

Pure: no Kafka, no topic names, no metrics. ``stream.service`` polls, hands each message's bytes to an
``Engine`` and publishes what comes back; every rule in between lives here (and in the modules it
calls), so it is unit-tested without a broker. One batch:

1. Per consumed message: ``admit`` (a live reading: None, or why it is refused, a dead letter),
   ``rebuild`` (a reading below its partition's committed offset: state only, nothing published) or
   ``add_line_record`` (a line record: None, or why it is skipped). ``close_idle(now_s)`` then
   closes the windows of silent stations (at most once per ``min(1 s, idle_timeout_s / 4)``).
2. ``work()``: the closed windows that need a score (None when none do); the caller scores them in
   one ``Bundle.score`` call and hands the ``ScoreBatch`` to ``finish``.
3. ``finish(now_s, scores)``: the batch's ``Outputs``, plain values in publish order:
   - station decisions (``detector.decisions.decide``): per window, its score record (kind
     ``score``, when ``score_records``) and its alerts (kind ``alert``), a station incident's alert
     linked to the tap incidents open at the segments it ends;
   - the incident state of every station the batch moved (kind ``state``, keyed and partitioned as
     the station's readings, when ``state_records``), written only when it differs from the last one
     written (a tombstone when the station is back to normal);
   - with a line: the segment alerts the line monitors release (linked to the station incidents open
     at their ends), each moved line's state (same dedup) and the batch's accepted line readings, one
     compact record per line (kind ``line``, key = line id) for the line's owner;
   - the counts the metrics move by once the batch is committed.
4. After the commit: ``committed(outputs)`` (what the scrape shows of the alerts). After an abort or
   a lost assignment: ``drop`` the partitions; the caller re-reads from the committed offsets.

Windows re-read to rebuild state move the tracker and the scrape's last score but publish nothing;
with state records on they are not decided at all (the restored state already holds their decisions).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from detector.bundle import Bundle, ScoreBatch
from detector.clock import SYSTEM_CLOCK, WallClock
from detector.decisions import (
    Model,
    Pending,
    decide,
    link_station_alerts,
    link_tap_alerts,
    open_station_incidents,
    scorable,
    taps_by_station,
)
from detector.errors import DataError
from detector.incidents import Alert, IncidentPolicy, IncidentTracker
from detector.line import SegmentView
from detector.line_table import LineTable, MonitorFactory, line_monitor
from detector.readings import ParseFailure
from detector.records import (
    EMPTY,
    decode_line_readings,
    decode_state,
    encode_line_readings,
    encode_state,
    line_of_state_key,
    line_state_key,
)
from detector.stations import Refusal, StationTable, StationView

log = logging.getLogger(__name__)

OutputKind = Literal["alert", "score", "state", "line"]
ALERT: OutputKind = "alert"  # an Alert's JSON; key = station id
SCORE: OutputKind = "score"  # a ScoreRecord's JSON; key = station id
STATE: OutputKind = "state"  # a state record (None: tombstone); key = station id or line_state_key
LINE: OutputKind = "line"  # a line record (encode_line_readings); key = line id

_TOMBSTONE = Refusal(EMPTY, "no value (tombstone)")


class Output(NamedTuple):
    """One record to publish: the caller picks the topic by ``kind``; ``partition`` None lets the
    partitioner pick (a state record names the partition its station's or line's records come from)."""

    kind: OutputKind
    key: bytes
    value: bytes | None
    partition: int | None = None


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """The rules' knobs (``stream.settings.Settings`` holds them for the live service)."""

    idle_timeout_s: float = 300.0
    max_future_s: float = 86400.0
    max_gap_windows_s: float = 21600.0
    refuse_unknown_stations: bool = False
    max_message_bytes: int = 65536
    policy: IncidentPolicy = field(default_factory=IncidentPolicy)
    score_records: bool = True  # one score record per published scored window
    state_records: bool = False  # incident and segment state records for a later owner


@dataclass(frozen=True, slots=True)
class Work:
    """Windows to score: ``Bundle.score(station_ids, windows)`` and hand the result to ``finish``."""

    station_ids: list[str]
    windows: npt.NDArray[Any]  # (n, T, S) raw


@dataclass(slots=True)
class Outputs:
    """What one batch decided: the records to publish (in order) and the counts for after its commit."""

    records: list[Output] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)  # every alert among ``records``, in order
    scored: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # unscorable windows by reason
    latencies_ms: list[int] = field(default_factory=list)  # produce time of each decided window's reading
    outcomes: dict[str, int] = field(default_factory=dict)  # readings accepted / late / duplicate
    off_line: int = 0  # accepted readings of stations the topology does not know
    line_readings: int = 0  # readings fed to a line monitor


class Engine:
    """Station and segment state of the partitions this instance holds, and every decision on it."""

    def __init__(
        self,
        bundle: Bundle,
        settings: EngineSettings | None = None,
        *,
        clock: WallClock = SYSTEM_CLOCK,
        monitor_factory: MonitorFactory = line_monitor,
    ) -> None:
        """``clock``: wall time of the alerts' ``emitted_at``; rules take ``now_s`` with each call."""
        self.settings = settings = settings or EngineSettings()
        self.tracker = IncidentTracker(settings.policy, clock=clock)
        self.lines: LineTable | None = None
        if bundle.topology is not None and bundle.line_calibration is not None:
            self.lines = LineTable(
                bundle.topology,
                bundle.line_calibration,
                model_version=bundle.model_version,
                idle_timeout_s=settings.idle_timeout_s,
                clock=clock.now,
                monitor_factory=monitor_factory,
            )
        self._written: dict[str, bytes] = {}  # last state record written per key (station or line)
        self._line_partition: dict[str, int] = {}  # line -> the line partition its records come from
        self._pending: list[Pending] = []  # windows closed in this batch, in closing order
        self._next_idle_check = -math.inf
        self.use(bundle)
        self.stations = StationTable(
            bundle.window_spec,
            len(bundle.sensors),
            known=bundle.scalers.per_station,
            check_known=settings.refuse_unknown_stations,
            max_future_s=settings.max_future_s,
            idle_timeout_s=settings.idle_timeout_s,
            topology=None if self.lines is None else self.lines.topology,
            max_gap_windows=max(
                1, math.ceil(settings.max_gap_windows_s / bundle.window_spec.step.total_seconds())
            ),
        )
        self._place = self.stations.admit  # bound once: called per reading

    def use(self, bundle: Bundle) -> None:
        """Score with ``bundle`` from now on (a hot reload); windows, state and the line stay."""
        self.bundle = bundle
        self._parse = bundle.parser(self.settings.max_message_bytes).parse
        self._model = Model(
            bundle.threshold,
            bundle.model_version,
            bundle.sensors,
            bundle.window_spec.length,
            bundle.manifest.station_thresholds,
        )
        if bundle.topology != (None if self.lines is None else self.lines.topology):
            log.warning("the new bundle's line differs from the one served: restart to balance it")

    def rebuild_horizon(self) -> timedelta:
        """How far before a committed offset a new owner re-reads (in produce time) to rebuild state."""
        spec, policy = self.bundle.window_spec, self.tracker.policy
        return (
            spec.length
            + spec.max_fill
            + spec.allowed_lateness
            + spec.step * (max(policy.n, policy.close_after) + 1)
            + policy.update_every
        )

    # -- messages in (the hot path) ---------------------------------------------------------------
    def admit(
        self, raw: bytes | None, key: bytes | None, partition: int, arrival_s: float, produced_ms: int
    ) -> Refusal | ParseFailure | None:
        """A live reading's bytes: None when taken (late and duplicate ones are counted), else why
        not (a dead letter: a tombstone, a parse failure, an admission refusal)."""
        if raw is None:
            return _TOMBSTONE
        reading = self._parse(raw)
        if reading.__class__ is ParseFailure:
            return reading  # type: ignore[return-value]
        closed = self._place(reading, key, partition, arrival_s)  # type: ignore[arg-type]
        if closed.__class__ is Refusal:
            return closed  # type: ignore[return-value]
        if closed:
            station_id = reading.station_id  # type: ignore[union-attr]
            self._pending += [Pending(station_id, window, produced_ms, False) for window in closed]  # type: ignore[union-attr]
        return None

    def rebuild(
        self, raw: bytes | None, key: bytes | None, partition: int, arrival_s: float, produced_ms: int
    ) -> None:
        """A reading the previous owner already processed: rebuild state from it, publish nothing.
        Refused readings are skipped silently (they were dead-lettered the first time)."""
        reading = None if raw is None else self._parse(raw)
        if reading is None or isinstance(reading, ParseFailure):
            return
        produced_s = produced_ms / 1000 if produced_ms > 0 else arrival_s
        closed = self.stations.rebuild(reading, key, partition, arrival_s, produced_s)
        if closed.__class__ is Refusal:
            return
        if closed and not self.settings.state_records:  # else the restored state already has their decisions
            self._pending += [Pending(reading.station_id, window, produced_ms, True) for window in closed]  # type: ignore[union-attr]

    def add_line_record(
        self, key: bytes | None, raw: bytes | None, partition: int, arrival_s: float
    ) -> str | None:
        """A record of a line partition this instance owns, to its line; None, or why it was skipped
        (it can only come from something other than the service; its offset commits all the same)."""
        lines = self.lines
        try:
            if lines is None or key is None or raw is None:
                raise DataError("no key or value")
            fields, rows = decode_line_readings(raw)
            line_id = key.decode()
            if line_id not in lines.line_ids():
                raise DataError(f"line {line_id!r} is not in the bundle's topology")
        except (DataError, UnicodeDecodeError) as error:
            return str(error)
        self._line_partition[line_id] = partition
        lines.add_rows(line_id, fields, rows, arrival_s)
        return None

    def close_idle(self, now_s: float) -> int:
        """Close the windows of stations silent for ``idle_timeout_s`` (when a check is due); returns
        how many windows gaps longer than ``max_gap_windows_s`` skipped since the last check."""
        if now_s < self._next_idle_check:
            return 0
        self._next_idle_check = now_s + min(1.0, self.settings.idle_timeout_s / 4)
        self._pending += [
            Pending(sid, window, -1, False, silent=True) for sid, window in self.stations.close_idle(now_s)
        ]
        skipped = 0
        for station_id, windows, gaps in self.stations.take_gap_skips():
            skipped += windows
            if gaps:
                log.warning(
                    "station %s: a gap longer than max_gap_windows_s=%g; %s of its windows skipped",
                    station_id,
                    self.settings.max_gap_windows_s,
                    self.stations.spec.step * windows,
                )
        return skipped

    # -- decisions out --------------------------------------------------------------------------
    def work(self) -> Work | None:
        """The windows closed so far that need a score, in order; None when none does."""
        windows = scorable(self._pending)
        if not windows:
            return None
        data = np.stack([item.window.data for item in windows])  # type: ignore[misc]  # all scorable
        return Work([item.station_id for item in windows], data)

    def finish(self, now_s: float, scores: ScoreBatch | None) -> Outputs:
        """Decide the batch: ``scores`` holds one row per ``work()`` window (None: no work)."""
        pending, self._pending = self._pending, []
        needed, got = len(scorable(pending)), 0 if scores is None else len(scores.scores)
        if needed != got:
            raise ValueError(f"finish needs {needed} scores (one per window of work()), got {got}")
        out = Outputs(outcomes=self.stations.take_outcomes(), off_line=self.stations.take_off_line())
        lines = self.lines
        taps = [] if lines is None else lines.release(now_s)
        if lines is not None:
            out.line_readings = lines.take_fed()
        if pending:
            self._decide(pending, scores, out)
            if self.settings.state_records:
                self._record_states({item.station_id for item in pending if not item.rebuild}, out)
        if taps:
            self._link_taps(taps, out)
        if lines is not None:
            if self.settings.state_records:
                self._record_line_states(lines, out)
            self._forward(out)
        return out

    def _decide(self, pending: list[Pending], scores: ScoreBatch | None, out: Outputs) -> None:
        model = self._model
        decided = decide(pending, scores, self.tracker, model, records=self.settings.score_records)
        out.scored, out.skipped = decided.scored, decided.skipped
        taps_at = {} if self.lines is None else taps_by_station(self.lines.open_taps())
        records, latencies = out.records, out.latencies_ms
        for item in decided.items:
            if item.score is not None:
                self.stations.note_score(item.station_id, item.score, model.threshold_for(item.station_id))
            if item.rebuild:
                continue
            key = item.station_id.encode()
            if item.record is not None:
                records.append(Output(SCORE, key, item.record))
            if item.produced_ms > 0:
                latencies.append(item.produced_ms)
            alerts = link_station_alerts(item.alerts, taps_at) if taps_at and item.alerts else item.alerts
            records += [Output(ALERT, key, alert.to_json_bytes()) for alert in alerts]
            out.alerts += alerts

    def _link_taps(self, taps: list[Alert], out: Outputs) -> None:
        ends = {
            s for alert in taps if alert.segment for s in (alert.segment.upstream, alert.segment.downstream)
        }
        linked = link_tap_alerts(taps, open_station_incidents(self.tracker, ends))
        out.records += [Output(ALERT, alert.station_id.encode(), alert.to_json_bytes()) for alert in linked]
        out.alerts += linked

    def _record_states(self, changed: set[str], out: Outputs) -> None:
        """The incident state of every station in ``changed`` that differs from the last one written
        (a station back to normal gets a tombstone; stations that stay normal write nothing)."""
        if not changed:
            return
        states, written = self.tracker.snapshot()["stations"], self._written
        for station_id in sorted(changed):
            station = self.stations.get(station_id)
            if station is None:
                continue
            value = encode_state(states.get(station_id))
            if value == written.get(station_id):
                continue
            if value is None:
                written.pop(station_id, None)
            else:
                written[station_id] = value
            out.records.append(Output(STATE, station.key, value, station.partition))

    def _record_line_states(self, lines: LineTable, out: Outputs) -> None:
        """Each line whose state moved and differs from the last one written: its snapshot."""
        for line_id in lines.take_changed():
            key = line_state_key(line_id)
            value = encode_state(lines.snapshot(line_id))
            if value is not None and value != self._written.get(key):
                self._written[key] = value
                partition = self._line_partition.get(line_id, 0)
                out.records.append(Output(STATE, key.encode(), value, partition))

    def _forward(self, out: Outputs) -> None:
        """The line readings this batch accepted, one record per line, for the line's owner."""
        by_line: dict[str, list[tuple[str, float, tuple[float, ...]]]] = {}
        for line_id, station_id, ts, values in self.stations.take_line_readings():
            by_line.setdefault(line_id, []).append((station_id, ts, values))
        fields = self.stations.line_fields
        for line_id, rows in by_line.items():
            out.records.append(Output(LINE, line_id.encode(), encode_line_readings(fields, rows)))

    def committed(self, outputs: Outputs) -> None:
        """``outputs`` are published: the scrape shows each station's latest incident contributions."""
        for alert in outputs.alerts:
            # Alerts are in event-time order per station, so the station's last one here wins.
            if alert.kind == "incident" and alert.status != "close" and alert.contributions:
                self.stations.note_contributions(
                    alert.station_id, tuple((c.sensor, c.share) for c in alert.contributions)
                )

    # -- ownership --------------------------------------------------------------------------------
    def restore(
        self, stations: Mapping[str, bytes], lines: Mapping[str, tuple[int, bytes]], now_s: float
    ) -> None:
        """Take over the previous owners' state records: incident state per station, segment state
        per line (key ``line_state_key``, with the line partition it was on). An unreadable record is
        logged and its station or line starts fresh."""
        snapshot = self.tracker.snapshot()
        for station_id, raw in stations.items():
            try:
                snapshot["stations"][station_id] = decode_state(raw, station_id)
                self._written[station_id] = raw
            except DataError as error:
                log.error("incident state ignored: %s", error)
        try:
            self.tracker.restore(snapshot)
        except DataError as error:
            log.error("incident state refused, starting those stations fresh: %s", error)
        for key, (partition, raw) in lines.items():
            line_id = line_of_state_key(key)
            if self.lines is None or line_id is None or line_id not in self.lines.line_ids():
                continue
            try:
                self.lines.restore(line_id, decode_state(raw, key), now_s)
            except DataError as error:
                log.error("segment state ignored, line %s starts fresh: %s", line_id, error)
                continue
            self._written[key] = raw
            self._line_partition[line_id] = partition

    def drop(self, partitions: Collection[int], line_partitions: Collection[int] = ()) -> None:
        """Forget the stations read from readings ``partitions`` and the lines read from
        ``line_partitions`` (their owner moved elsewhere, or a batch was aborted)."""
        for station_id in self.stations.drop_partitions(partitions):
            self.tracker.forget(station_id)
            self._written.pop(station_id, None)
        if self.lines is not None and line_partitions:
            gone = [line for line, p in self._line_partition.items() if p in line_partitions]
            self.lines.drop(gone)
            for line_id in gone:
                del self._line_partition[line_id]
                self._written.pop(line_state_key(line_id), None)

    # -- what the scrape shows --------------------------------------------------------------------
    def station_views(self) -> Iterator[StationView]:
        return self.stations.views(self.tracker.is_open)

    def segment_views(self) -> Iterator[SegmentView]:
        return iter(()) if self.lines is None else self.lines.views()

    def open_incidents(self) -> int:
        """Station and segment incidents open now."""
        return self.tracker.open_incidents() + (0 if self.lines is None else self.lines.open_incidents())
