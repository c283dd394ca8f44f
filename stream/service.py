"""The detector loop, transport only: poll, hand readings to the core, publish, commit.

One iteration (``step``):

1. ``consume`` up to ``max_batch`` messages; parse each (bad data becomes a dead letter).
2. ``detector.stations.StationTable.admit`` places each reading (or refuses it: a dead letter) and
   returns the windows it closed; ``close_idle`` closes the windows of silent stations.
3. The closed windows are scored in one ``Bundle.score`` call and ``detector.decisions.decide`` turns
   scores and gaps into alerts and score records.
4. With a line in the bundle: each accepted reading of a line's station is forwarded, compact, to the
   line topic (key = line id); the records read back from the line partitions this instance owns go
   to ``detector.line_table.LineTable``, whose monitors return the segment alerts (repartition: a
   line's stations meet at its partition's owner, whichever instances read their readings).
5. Alerts, score records, dead letters, line records and state records are produced and committed
   together with the offsets of both topics (one Kafka transaction with exactly-once); metrics move
   once, after the commit.

Messages below a partition's committed offset (re-read after an assignment) rebuild windows and
incident state but publish nothing: the previous owner already did.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from detector.bundle import FORMAT_VERSION, Bundle
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
from detector.errors import BrokerError, DataError
from detector.incidents import Alert, IncidentTracker
from detector.line import SegmentView
from detector.line_table import LineTable, MonitorFactory, line_monitor
from detector.readings import ParseFailure, ReadingParser
from detector.records import (
    EMPTY,
    FUTURE_TIMESTAMP,
    KEY_MISMATCH,
    STATION_SILENT,
    UNKNOWN_STATION,
    decode_line_readings,
    decode_state,
    encode_line_readings,
    encode_state,
    line_state_key,
)
from detector.stations import Refusal, StationTable, StationView
from stream.clock import Clock, SystemClock
from stream.metrics import DetectorMetrics
from stream.outbox import Outbox
from stream.ports import Assigned, Broker, Mark, Partition, SourceMessage, TransactionAbortedError
from stream.reload import BundleWatcher
from stream.settings import Settings

__all__ = [
    "EMPTY",
    "FUTURE_TIMESTAMP",
    "KEY_MISMATCH",
    "STATION_SILENT",
    "UNKNOWN_STATION",
    "DetectorService",
]

log = logging.getLogger(__name__)


class DetectorService:
    """The live detector; ``run(stop)`` until ``stop`` is set, or call ``step()`` yourself in tests."""

    def __init__(
        self,
        settings: Settings,
        broker: Broker,
        bundle: Bundle,
        metrics: DetectorMetrics,
        *,
        clock: Clock | None = None,
        watcher: BundleWatcher | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        monitor_factory: MonitorFactory = line_monitor,
    ) -> None:
        self.settings = settings
        self._monotonic = monotonic
        self.broker = broker
        self.metrics = metrics
        self.clock = clock or SystemClock()
        self.watcher = watcher
        self._now = lambda: datetime.fromtimestamp(self.clock.now(), UTC)
        self._tracker = IncidentTracker(settings.incident.policy(), clock=self._now)
        self._held: set[Partition] = set()
        self._committed: dict[Partition, int] = {}  # next offset committed by this instance
        self._rebuild_until: dict[int, int] = {}  # readings partition -> its committed offset
        self._written_state: dict[str, bytes] = {}  # last state record written per station (not normal)
        self._next_idle_check = 0.0
        self._next_lag = 0.0
        self._down_since: float | None = None
        self.lines: LineTable | None = None
        if bundle.topology is not None and bundle.line_calibration is not None:
            self.lines = LineTable(
                bundle.topology,
                bundle.line_calibration,
                model_version=bundle.model_version,
                idle_timeout_s=settings.idle_timeout_s,
                clock=self._now,
                monitor_factory=monitor_factory,
            )
        # The internal topic a line's readings meet on; empty without a line (nothing of it exists).
        self.line_topic = (
            "" if self.lines is None else settings.topics.line or f"{settings.topics.readings}.line"
        )
        self._line_partition: dict[str, int] = {}  # line -> the line partition its records come from
        self._use(bundle)
        self.stations = self._new_table()
        metrics.watch_stations(self._station_views, self.clock.now)
        metrics.watch_segments(self._segment_views)
        metrics.broker_up.set(1)

    # -- model -----------------------------------------------------------------------------
    def _use(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self._parser: ReadingParser = bundle.parser(self.settings.max_message_bytes)
        self._model = Model(
            bundle.threshold,
            bundle.model_version,
            bundle.sensors,
            bundle.window_spec.length,
            bundle.manifest.station_thresholds,
        )
        self.metrics.set_model(bundle.model_version, FORMAT_VERSION)
        if bundle.topology != (None if self.lines is None else self.lines.topology):
            log.warning("the new bundle's line differs from the one served: restart to balance it")

    def _new_table(self) -> StationTable:
        settings, bundle = self.settings, self.bundle
        return StationTable(
            bundle.window_spec,
            len(bundle.sensors),
            known=bundle.scalers.per_station,
            check_known=not settings.accept_unknown_stations,
            max_future_s=settings.max_future_s,
            idle_timeout_s=settings.idle_timeout_s,
            topology=None if self.lines is None else self.lines.topology,
            max_gap_windows=max(
                1, math.ceil(settings.max_gap_windows_s / bundle.window_spec.step.total_seconds())
            ),
        )

    @property
    def model_version(self) -> str:
        return self.bundle.model_version

    def rebuild_horizon(self) -> timedelta:
        """How far before a committed offset a new owner re-reads (in produce time) to rebuild state."""
        spec, policy = self.bundle.window_spec, self._tracker.policy
        return (
            spec.length
            + spec.max_fill
            + spec.allowed_lateness
            + spec.step * (max(policy.n, policy.close_after) + 1)
            + policy.update_every
        )

    # -- assignment (called by the broker adapter, inside consume) ---------------------------
    def assigned(self, partitions: Sequence[Assigned]) -> set[Partition]:
        held, committed, line = self._held, self._committed, self.line_topic
        keep = {a.key for a in partitions if a.key in held and committed.get(a.key) == a.committed}
        self._drop({p for p in held if p not in keep} | {a.key for a in partitions if a.key not in keep})
        self._held = {a.key for a in partitions}
        self.metrics.health.assigned = len(self._held)
        self._rebuild_until = {
            a.partition: a.committed
            for a in partitions
            if a.topic != line and a.key not in keep and a.committed > 0
        }
        return keep

    def restore(self, stations: Mapping[str, bytes], lines: Mapping[str, tuple[int, bytes]]) -> None:
        """Take over the previous owners' state (the state topic) of freshly assigned partitions."""
        snapshot = self._tracker.snapshot()
        for station_id, raw in stations.items():
            try:
                snapshot["stations"][station_id] = decode_state(raw, station_id)
                self._written_state[station_id] = raw
            except DataError as error:
                log.error("incident state ignored: %s", error)
        try:
            self._tracker.restore(snapshot)
        except DataError as error:
            log.error("incident state refused, starting those stations fresh: %s", error)
        for key, (partition, raw) in lines.items():
            line_id = key.removeprefix("line/")
            if self.lines is None or line_id not in self.lines.line_ids():
                continue
            try:
                self.lines.restore(line_id, decode_state(raw, key), self.clock.now())
            except DataError as error:
                log.error("segment state ignored, line %s starts fresh: %s", line_id, error)
                continue
            self._written_state[key] = raw
            self._line_partition[line_id] = partition

    def revoked(self, partitions: Sequence[Partition]) -> None:
        # State stays until the next assignment says whether these partitions come back unchanged.
        for topic, partition in partitions:
            if topic != self.line_topic:
                self._rebuild_until.pop(partition, None)

    def _drop(self, partitions: set[Partition]) -> None:
        if not partitions:
            return
        line = self.line_topic
        for station_id in self.stations.drop_partitions({p for t, p in partitions if t != line}):
            self._tracker.forget(station_id)
            self._written_state.pop(station_id, None)
        if self.lines is not None:
            gone = [line for line, p in self._line_partition.items() if (self.line_topic, p) in partitions]
            self.lines.drop(gone)
            for line_id in gone:
                del self._line_partition[line_id]
                self._written_state.pop(line_state_key(line_id), None)
        for key in partitions:
            self._committed.pop(key, None)
        self.metrics.open_incidents.set(self.open_incidents())

    # -- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set; then finish the batch in hand, publish, commit and close."""
        self.broker.start(self, int(self.rebuild_horizon().total_seconds() * 1000), self.line_topic)
        topics = self.settings.topics
        log.info(
            "detector running: model %s, topic %s, group %s",
            self.model_version,
            topics.readings,
            self.settings.group_id,
        )
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.broker.close()
            log.info("detector stopped")

    def step(self) -> int:
        """One iteration; returns how many messages it consumed."""
        self.metrics.health.beat()
        if self.watcher is not None:
            fresh = self.watcher.poll(self.bundle)
            if fresh is not None:
                self._use(fresh)
        settings = self.settings
        messages = self.broker.consume(settings.max_batch, settings.poll_timeout_s)
        now = self.clock.now()
        batch = Outbox()
        if messages:
            self._ingest(messages, now, batch)
        if now >= self._next_idle_check:
            self._next_idle_check = now + min(1.0, settings.idle_timeout_s / 4)
            batch.windows += [
                Pending(sid, window, -1, False, silent=True) for sid, window in self.stations.close_idle(now)
            ]
            self._count_gap_skips()
        taps = [] if self.lines is None else self._balance(now, batch)
        if batch.windows:
            self._decide(batch)
            if settings.topics.state:
                self._record_state(batch)
        if taps:
            self._publish_line_alerts(taps, batch)
        if self.lines is not None and settings.topics.state:
            self._record_line_state(batch)
        if self.lines is not None:
            self._forward(batch)
        if batch.outputs or batch.marks:
            self._publish(batch)
        self._housekeeping()
        return len(messages)

    def _ingest(self, messages: Sequence[SourceMessage], now: float, batch: Outbox) -> None:
        """The hot path: parse, admit, collect closed windows; a few hundred ns of our own per message."""
        parse, admit, dlq = self._parser.parse, self.stations.admit, self.settings.topics.dlq
        pending, rebuild_until, line_topic = batch.windows, self._rebuild_until, self.line_topic
        last: dict[Partition, SourceMessage] = {}
        rebuilt = 0
        for message in messages:
            if message.error() is not None:
                continue
            partition = message.partition() or 0
            if line_topic and message.topic() == line_topic:
                last[(line_topic, partition)] = message
                self._take_line_record(message, partition, now)
                continue
            if rebuild_until and (message.offset() or 0) < rebuild_until.get(partition, -1):
                self._rebuild_from(message, partition, now, pending)
                rebuilt += 1
                continue
            # Only offsets at or past the committed one move the commit.
            last[(message.topic() or "", partition)] = message
            raw = message.value()
            if raw is None:
                batch.dead_letter(dlq, message, EMPTY, "no value (tombstone)")
                continue
            reading = parse(raw)
            if reading.__class__ is ParseFailure:
                batch.dead_letter(dlq, message, reading.reason, reading.detail)  # type: ignore[union-attr]
                continue
            closed = admit(reading, message.key(), partition, now)  # type: ignore[arg-type]
            if closed.__class__ is Refusal:
                batch.dead_letter(dlq, message, closed.reason, closed.detail)  # type: ignore[union-attr]
                continue
            if closed:
                produced_ms = message.timestamp()[1]
                station_id = reading.station_id  # type: ignore[union-attr]
                pending += [Pending(station_id, window, produced_ms, False) for window in closed]  # type: ignore[union-attr]
        for key, message in last.items():
            batch.marks[key] = Mark((message.offset() or 0) + 1, message.timestamp()[1])
            if key[0] != line_topic:
                rebuild_until.pop(key[1], None)  # past the committed offset: rebuilding is over
        batch.outcomes = self.stations.take_outcomes()
        batch.off_line = self.stations.take_off_line()
        if rebuilt:
            # Counted now: a batch of re-read messages alone publishes and commits nothing.
            self.metrics.rebuilt_readings.inc(rebuilt)

    def _rebuild_from(
        self, message: SourceMessage, partition: int, now: float, pending: list[Pending]
    ) -> None:
        """A message the previous owner already processed: rebuild state from it, publish nothing."""
        raw = message.value()
        reading = None if raw is None else self._parser.parse(raw)
        if reading is None or isinstance(reading, ParseFailure):
            return
        produced_ms = message.timestamp()[1]
        produced_s = produced_ms / 1000 if produced_ms > 0 else now
        closed = self.stations.rebuild(reading, message.key(), partition, now, produced_s)
        if closed.__class__ is Refusal:
            return
        if closed and not self.settings.topics.state:  # else the restored state already has their decisions
            pending += [
                Pending(reading.station_id, window, message.timestamp()[1], True)
                for window in closed  # type: ignore[union-attr]
            ]

    def _count_gap_skips(self) -> None:
        step = self.bundle.window_spec.step
        for station_id, windows, gaps in self.stations.take_gap_skips():
            self.metrics.gap_windows_skipped.inc(windows)
            if gaps:
                log.warning(
                    "station %s: a gap longer than max_gap_windows_s=%g; %s of its windows skipped",
                    station_id,
                    self.settings.max_gap_windows_s,
                    step * windows,
                )

    def _decide(self, batch: Outbox) -> None:
        windows = scorable(batch.windows)
        scores = None
        if windows:
            started = time.perf_counter()
            data = np.stack([w.window.data for w in windows])  # type: ignore[misc]  # all scorable
            scores = self.bundle.score([w.station_id for w in windows], data)
            batch.scoring_s = time.perf_counter() - started
        topics = self.settings.topics
        decided = decide(batch.windows, scores, self._tracker, self._model, records=bool(topics.scores))
        batch.scored, batch.skipped = decided.scored, decided.skipped
        model = self._model
        taps_at = {} if self.lines is None else taps_by_station(self.lines.open_taps())
        for item in decided.items:
            if item.score is not None:
                self.stations.note_score(item.station_id, item.score, model.threshold_for(item.station_id))
            if item.rebuild:
                continue
            key = item.station_id.encode()
            if item.record is not None:
                batch.add(topics.scores, key, item.record)
            if item.produced_ms > 0:
                batch.latencies_ms.append(item.produced_ms)
            alerts = link_station_alerts(item.alerts, taps_at) if taps_at and item.alerts else item.alerts
            for alert in alerts:
                batch.add(topics.alerts, key, alert.to_json_bytes())
            batch.alerts += alerts

    # -- segments ----------------------------------------------------------------------------
    def _forward(self, batch: Outbox) -> None:
        """The line readings this batch accepted, one record per line, to the line's partition (same
        transaction as the offsets of the readings)."""
        by_line: dict[str, list[tuple[str, float, tuple[float, ...]]]] = {}
        for line_id, station_id, ts, values in self.stations.take_line_readings():
            by_line.setdefault(line_id, []).append((station_id, ts, values))
        fields = self.stations.line_fields
        for line_id, rows in by_line.items():
            batch.add(self.line_topic, line_id.encode(), encode_line_readings(fields, rows))

    def _take_line_record(self, message: SourceMessage, partition: int, now: float) -> None:
        """A line record of a line partition this instance owns: to that line's table."""
        lines, key, raw = self.lines, message.key(), message.value()
        try:
            if lines is None or key is None or raw is None:
                raise DataError("no key or value")
            fields, rows = decode_line_readings(raw)
            line_id = key.decode()
            if line_id not in lines.line_ids():
                raise DataError(f"line {line_id!r} is not in the bundle's topology")
        except (DataError, UnicodeDecodeError) as error:
            log.warning("line record %s/%s skipped: %s", partition, message.offset(), error)
            return
        self._line_partition[line_id] = partition
        lines.add_rows(line_id, fields, rows, now)

    def _balance(self, now: float, batch: Outbox) -> list[Alert]:
        """What the line records read so far let the monitors decide: the segment alerts."""
        lines = self.lines
        assert lines is not None
        alerts = lines.release(now)
        batch.line_readings = lines.take_fed()
        return alerts

    def _publish_line_alerts(self, alerts: list[Alert], batch: Outbox) -> None:
        ends = {
            station
            for alert in alerts
            if alert.segment
            for station in (alert.segment.upstream, alert.segment.downstream)
        }
        linked = link_tap_alerts(alerts, open_station_incidents(self._tracker, ends))
        topic = self.settings.topics.alerts
        for alert in linked:
            batch.add(topic, alert.station_id.encode(), alert.to_json_bytes())
        batch.alerts += linked

    def _record_line_state(self, batch: Outbox) -> None:
        """Each line whose state moved: its snapshot, in the same transaction as its alerts."""
        lines = self.lines
        assert lines is not None
        for line_id in lines.take_changed():
            key = line_state_key(line_id)
            value = encode_state(lines.snapshot(line_id))
            if value != self._written_state.get(key):
                self._written_state[key] = value  # type: ignore[assignment]  # a snapshot is never None
                partition = self._line_partition.get(line_id, 0)
                batch.add(self.settings.topics.state, key.encode(), value, partition=partition)

    def _record_state(self, batch: Outbox) -> None:
        """The incident state of every station this batch changed, for a later owner (same transaction
        as the alerts). A station back to normal gets a tombstone; stations that stay normal write nothing."""
        changed = {item.station_id for item in batch.windows if not item.rebuild}
        if not changed:
            return
        states, written, topic = (
            self._tracker.snapshot()["stations"],
            self._written_state,
            self.settings.topics.state,
        )
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
            batch.add(topic, station.key, value, partition=station.partition)

    def _publish(self, batch: Outbox) -> None:
        broker = self.broker
        broker.begin()
        try:
            for out in batch.outputs:
                broker.produce(out.topic, out.key, out.value, out.headers, out.partition)
            broker.commit(batch.marks)
        except TransactionAbortedError:
            # Nothing of this batch is visible and its offsets did not move, but the state did:
            # forget everything and re-read from the committed offsets, as a new owner would.
            log.warning("transaction aborted; rebuilding state from the committed offsets")
            self.metrics.count_abort()
            self._drop(set(self._held))
            self._held.clear()
            broker.rewind()
            return
        for key, mark in batch.marks.items():
            self._committed[key] = mark.next_offset
        for alert in batch.alerts:
            # Alerts are in event-time order per station, so the station's last one here wins.
            if alert.kind == "incident" and alert.status != "close" and alert.contributions:
                self.stations.note_contributions(
                    alert.station_id, tuple((c.sensor, c.share) for c in alert.contributions)
                )
        self.metrics.count_batch(batch, self.clock.now(), self.open_incidents())

    def _housekeeping(self) -> None:
        now = self._monotonic()
        healthy = self.broker.healthy()
        if healthy:
            self._down_since = None
        elif self._down_since is None:
            self._down_since = now
        elif now - self._down_since > self.settings.broker_outage_limit_s:
            limit = self.settings.broker_outage_limit_s
            raise BrokerError(f"Kafka unreachable for more than broker_outage_limit_s={limit:g} s")
        if now < self._next_lag:
            return
        self._next_lag = now + self.settings.lag_interval_s
        self.metrics.set_lag(self.broker.lag())
        self.metrics.set_broker_up(healthy)

    # -- what the scrape shows ---------------------------------------------------------------
    def _station_views(self) -> Iterator[StationView]:
        return self.stations.views(self._tracker.is_open)

    def _segment_views(self) -> Iterator[SegmentView]:
        return iter(()) if self.lines is None else self.lines.views()

    def open_incidents(self) -> int:
        """Station and segment incidents open now."""
        return self._tracker.open_incidents() + (0 if self.lines is None else self.lines.open_incidents())

    def station_count(self) -> int:
        return len(self.stations)
