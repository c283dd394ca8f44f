"""The detector loop: poll a batch, window it per station, score what closed in one go, publish, commit.

One iteration (``step``):

1. ``consume`` up to ``max_batch`` messages.
2. Parse each; bad data becomes a dead letter (original bytes and headers, plus reason headers),
   good readings go into their station's ``StationBuffer``; late and duplicate ones are only counted.
3. Stations silent for ``idle_timeout_s`` of wall time get their watermark advanced by the clock,
   so their windows close (as gaps) instead of waiting for a reading that may never come.
4. Every window closed in this iteration is scored in one ``Bundle.score`` call; the incident
   tracker turns scores and skipped windows into alerts, in event-time order per station.
5. Alerts, score records and dead letters are produced and committed together with the offsets
   (one Kafka transaction with exactly-once); metrics move once, after the commit.

Messages below a partition's committed offset (re-read after an assignment) rebuild windows and
incident state but publish nothing: the previous owner already did.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson

from detector.bundle import FORMAT_VERSION, Bundle
from detector.errors import BrokerError, DataError
from detector.incidents import Alert, IncidentTracker
from detector.readings import ParseFailure, ReadingParser, format_ts
from detector.windows import AddOutcome, ClosedWindow, StationBuffer
from stream.clock import Clock, SystemClock
from stream.metrics import DetectorMetrics, StationView
from stream.ports import Assigned, Broker, Headers, Mark, SourceMessage, TransactionAbortedError
from stream.reload import BundleWatcher
from stream.settings import Settings

log = logging.getLogger(__name__)

SCORE_SCHEMA = 1
# Reasons the service adds to the parser's (detector.readings.REASONS) for the dead-letter topic.
EMPTY = "empty"
UNKNOWN_STATION = "unknown_station"
KEY_MISMATCH = "key_mismatch"
FUTURE_TIMESTAMP = "future_timestamp"
# A window closed by the idle clock, not by a reading: the station went silent.
STATION_SILENT = "station_silent"

_ACCEPTED, _LATE, _DUPLICATE = AddOutcome.ACCEPTED, AddOutcome.LATE, AddOutcome.DUPLICATE


class _Station:
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


@dataclass(slots=True)
class _Pending:
    station_id: str
    window: ClosedWindow
    produced_ms: int  # produce time of the reading that closed it; -1 when the idle clock did
    rebuild: bool
    silent: bool = False


@dataclass(slots=True)
class _Batch:
    """What one iteration publishes, and the counts its metrics move by after the commit."""

    windows: list[_Pending] = field(default_factory=list)
    outputs: list[tuple[str, bytes | None, bytes | None, Headers | None, int | None]] = field(
        default_factory=list
    )
    marks: dict[int, Mark] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    scored: int = 0
    latencies_ms: list[int] = field(default_factory=list)
    scoring_s: float | None = None


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
    ) -> None:
        self.settings = settings
        self._monotonic = monotonic
        self.broker = broker
        self.metrics = metrics
        self.clock = clock or SystemClock()
        self.watcher = watcher
        self._tracker = IncidentTracker(
            settings.incident.policy(), clock=lambda: datetime.fromtimestamp(self.clock.now(), UTC)
        )
        self._stations: dict[str, _Station] = {}
        self._held: set[int] = set()
        self._committed: dict[int, int] = {}  # partition -> next offset committed by this instance
        self._rebuild_until: dict[int, int] = {}
        self._written_state: dict[str, bytes] = {}  # last state record written per station (not normal)
        self._next_idle_check = 0.0
        self._next_lag = 0.0
        self._down_since: float | None = None
        self._use(bundle)
        metrics.watch_stations(self._station_views, self.clock.now)
        metrics.broker_up.set(1)

    # -- model -----------------------------------------------------------------------------
    def _use(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self._parser: ReadingParser = bundle.parser(self.settings.max_message_bytes)
        self._spec = bundle.window_spec
        self._known = frozenset(bundle.scalers.per_station)
        self._check_known = not self.settings.accept_unknown_stations and bool(self._known)
        self._state_topic = self.settings.topics.state
        self.metrics.set_model(bundle.model_version, FORMAT_VERSION)

    @property
    def model_version(self) -> str:
        return self.bundle.model_version

    def rebuild_horizon(self) -> timedelta:
        """How far before a committed offset a new owner re-reads (in produce time) to rebuild state."""
        spec, policy = self._spec, self._tracker.policy
        return (
            spec.length
            + spec.max_fill
            + spec.allowed_lateness
            + spec.step * (max(policy.n, policy.close_after) + 1)
            + policy.update_every
        )

    # -- assignment (called by the broker adapter, inside consume) ---------------------------
    def assigned(self, partitions: Sequence[Assigned]) -> set[int]:
        keep = {
            a.partition
            for a in partitions
            if a.partition in self._held and self._committed.get(a.partition) == a.committed
        }
        self._drop(
            {p for p in self._held if p not in keep}
            | {a.partition for a in partitions if a.partition not in keep}
        )
        self._held = {a.partition for a in partitions}
        self._rebuild_until = {
            a.partition: a.committed for a in partitions if a.partition not in keep and a.committed > 0
        }
        return keep

    def restore(self, states: Mapping[str, bytes]) -> None:
        """Take over the previous owner's incident state (from the state topic) for new stations."""
        snapshot = self._tracker.snapshot()
        for station_id, raw in states.items():
            try:
                snapshot["stations"][station_id] = orjson.loads(raw)
                self._written_state[station_id] = raw
            except orjson.JSONDecodeError:
                log.error("unreadable incident state for %s ignored", station_id)
        try:
            self._tracker.restore(snapshot)
        except DataError as error:
            log.error("incident state refused, starting those stations fresh: %s", error)

    def revoked(self, partitions: Sequence[int]) -> None:
        # State stays until the next assignment says whether these partitions come back unchanged.
        for partition in partitions:
            self._rebuild_until.pop(partition, None)

    def _drop(self, partitions: set[int]) -> None:
        if not partitions:
            return
        gone = [sid for sid, station in self._stations.items() if station.partition in partitions]
        for station_id in gone:
            del self._stations[station_id]
            self._tracker.forget(station_id)
            self._written_state.pop(station_id, None)
        for partition in partitions:
            self._committed.pop(partition, None)
        self.metrics.open_incidents.set(self._tracker.open_incidents())

    # -- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set; then finish the batch in hand, publish, commit and close."""
        self.broker.start(self, int(self.rebuild_horizon().total_seconds() * 1000))
        log.info(
            "detector running: model %s, topic %s, group %s",
            self.model_version,
            self.settings.topics.readings,
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
        if self.watcher is not None:
            fresh = self.watcher.poll(self.bundle)
            if fresh is not None:
                self._use(fresh)
        settings = self.settings
        messages = self.broker.consume(settings.max_batch, settings.poll_timeout_s)
        now = self.clock.now()
        batch = _Batch()
        if messages:
            self._ingest(messages, now, batch)
        if now >= self._next_idle_check:
            self._next_idle_check = now + min(1.0, settings.idle_timeout_s / 4)
            self._close_idle(now, batch)
        if batch.windows:
            self._decide(batch)
            if self._state_topic:
                self._record_state(batch)
        if batch.outputs or batch.marks:
            self._publish(batch)
        self._housekeeping()
        return len(messages)

    def _ingest(self, messages: Sequence[SourceMessage], now: float, batch: _Batch) -> None:
        """The hot path: a few hundred nanoseconds of our own per message around parse and add."""
        parse = self._parser.parse
        stations = self._stations
        pending = batch.windows
        rebuild_until = self._rebuild_until
        check_known, known = self._check_known, self._known
        latest_plausible = now + self.settings.max_future_s
        last: dict[int | None, SourceMessage] = {}
        accepted = late = duplicate = rebuilt = 0
        for message in messages:
            if message.error() is not None:
                continue
            partition = message.partition()
            if rebuild_until and (message.offset() or 0) < rebuild_until.get(partition or 0, -1):
                self._rebuild_from(message, now, pending)
                rebuilt += 1
                continue
            # Only offsets at or past the committed one move the commit: never backwards.
            last[partition] = message
            raw = message.value()
            if raw is None:
                self._dead_letter(batch, message, EMPTY, "no value (tombstone)")
                continue
            reading = parse(raw)
            if isinstance(reading, ParseFailure):
                self._dead_letter(batch, message, reading.reason, reading.detail)
                continue
            if reading.ts.timestamp() > latest_plausible:
                self._dead_letter(
                    batch, message, FUTURE_TIMESTAMP, f"ts {format_ts(reading.ts)} is ahead of the clock"
                )
                continue
            station_id = reading.station_id
            station = stations.get(station_id)
            key = message.key()
            if station is None:
                if key is not None and key != station_id.encode():
                    self._dead_letter(batch, message, KEY_MISMATCH, f"key {key[:40]!r} is not the station id")
                    continue
                if check_known and station_id not in known:
                    self._dead_letter(batch, message, UNKNOWN_STATION, station_id)
                    continue
                station = self._new_station(station_id, partition or 0, now)
            else:
                if key is not None and key != station.key:
                    self._dead_letter(batch, message, KEY_MISMATCH, f"key {key[:40]!r} is not the station id")
                    continue
                station.last_arrival = now
            buffer = station.buffer
            outcome = buffer.add(reading.ts, list(reading.values.values()))
            if outcome is _ACCEPTED:
                accepted += 1
            elif outcome is _LATE:
                late += 1
            else:
                duplicate += 1
            if buffer.ready:
                produced_ms = message.timestamp()[1]
                for window in buffer.take_ready():
                    pending.append(_Pending(station_id, window, produced_ms, False))
        for partition, message in last.items():
            batch.marks[partition or 0] = Mark((message.offset() or 0) + 1, message.timestamp()[1])
            rebuild_until.pop(partition or 0, None)  # past the committed offset: rebuilding is over
        batch.outcomes = {"accepted": accepted, "late": late, "duplicate": duplicate}
        if rebuilt:
            # Counted now: a batch of re-read messages alone publishes and commits nothing.
            self.metrics.rebuilt_readings.inc(rebuilt)

    def _new_station(self, station_id: str, partition: int, now: float) -> _Station:
        station = _Station(StationBuffer(self._spec, len(self.bundle.sensors)), station_id, partition, now)
        self._stations[station_id] = station
        return station

    def _rebuild_from(self, message: SourceMessage, now: float, pending: list[_Pending]) -> None:
        """A message the previous owner already processed: rebuild state from it, publish nothing."""
        raw = message.value()
        reading = None if raw is None else self._parser.parse(raw)
        if reading is None or isinstance(reading, ParseFailure):
            return
        if reading.ts.timestamp() > now + self.settings.max_future_s:
            return  # dead-lettered when it was first processed
        station = self._stations.get(reading.station_id)
        if station is None:
            station = self._new_station(reading.station_id, message.partition() or 0, now)
        station.last_arrival = now
        buffer = station.buffer
        buffer.add(reading.ts, list(reading.values.values()))
        if buffer.ready:
            windows = buffer.take_ready()
            if self._state_topic:
                return  # the restored incident state already includes these windows' decisions
            produced_ms = message.timestamp()[1]
            for window in windows:
                pending.append(_Pending(reading.station_id, window, produced_ms, True))

    def _dead_letter(self, batch: _Batch, message: SourceMessage, reason: str, detail: str) -> None:
        headers: Headers = [(name, value) for name, value in (message.headers() or ()) if value is not None]
        headers += [
            ("centinela.reason", reason.encode()),
            ("centinela.detail", detail.encode("utf-8", "replace")[:512]),
            ("centinela.source.topic", (message.topic() or "").encode()),
            ("centinela.source.partition", str(message.partition()).encode()),
            ("centinela.source.offset", str(message.offset()).encode()),
        ]
        batch.outputs.append((self.settings.topics.dlq, message.key(), message.value() or b"", headers, None))
        batch.dead[reason] = batch.dead.get(reason, 0) + 1

    def _close_idle(self, now: float, batch: _Batch) -> None:
        """Advance the watermark of every station silent for longer than the idle timeout."""
        timeout = self.settings.idle_timeout_s
        lateness = self._spec.allowed_lateness
        for station_id, station in self._stations.items():
            silent_for = now - station.last_arrival
            if silent_for <= timeout:
                continue
            newest = station.buffer.newest
            if newest is None:
                continue
            watermark = newest + timedelta(seconds=silent_for) - lateness
            for window in station.buffer.close_until(watermark):
                batch.windows.append(_Pending(station_id, window, -1, False, silent=True))

    def _decide(self, batch: _Batch) -> None:
        bundle = self.bundle
        tracker = self._tracker
        spec_length = self._spec.length
        threshold = bundle.threshold
        version = bundle.model_version
        sensors = bundle.sensors
        scorable = [item for item in batch.windows if item.window.data is not None]
        scores: list[float] = []
        shares: list[list[float]] = []
        if scorable:
            started = time.perf_counter()
            result = bundle.score(
                [item.station_id for item in scorable],
                np.stack([item.window.data for item in scorable]),  # type: ignore[misc]  # filtered above
            )
            batch.scoring_s = time.perf_counter() - started
            scores = result.scores.tolist()
            shares = result.contributions.tolist()
        scores_topic = self.settings.topics.scores
        position = 0
        for item in batch.windows:
            station_id, window = item.station_id, item.window
            start = window.end - spec_length
            station = self._stations.get(station_id)
            if window.data is not None:
                score = scores[position]
                contributions = dict(zip(sensors, shares[position], strict=True))
                position += 1
                alerts = tracker.observe(
                    station_id, window.end, start, score, threshold, contributions, version
                )
                if station is not None:
                    station.score, station.threshold = score, threshold
                if item.rebuild:
                    continue
                batch.scored += 1
                if scores_topic:
                    record = {
                        "schema": SCORE_SCHEMA,
                        "station_id": station_id,
                        "window_end": format_ts(window.end),
                        "score": score,
                        "threshold": threshold,
                        "model_version": version,
                    }
                    batch.outputs.append(
                        (scores_topic, station_id.encode(), orjson.dumps(record), None, None)
                    )
            else:
                reason = STATION_SILENT if item.silent else (window.skip_reason or "unscorable")
                alerts = tracker.gap(station_id, start, window.end, reason, version, threshold)
                if item.rebuild:
                    continue
                skip = window.skip_reason or "unscorable"
                batch.skipped[skip] = batch.skipped.get(skip, 0) + 1
            if item.produced_ms > 0:
                batch.latencies_ms.append(item.produced_ms)
            for alert in alerts:
                batch.outputs.append(
                    (self.settings.topics.alerts, station_id.encode(), alert.to_json_bytes(), None, None)
                )
            batch.alerts.extend(alerts)

    def _record_state(self, batch: _Batch) -> None:
        """The incident state of every station whose state this batch changed, for a later owner
        (same transaction as the alerts). A station back to normal gets a tombstone; stations that
        stay normal write nothing."""
        changed = {item.station_id for item in batch.windows if not item.rebuild}
        if not changed:
            return
        states = self._tracker.snapshot()["stations"]
        written = self._written_state
        for station_id in sorted(changed):
            station = self._stations.get(station_id)
            if station is None:
                continue
            state = states.get(station_id)
            value = None if state is None else orjson.dumps(state)
            if value == written.get(station_id):
                continue
            if value is None:
                written.pop(station_id, None)
            else:
                written[station_id] = value
            batch.outputs.append((self._state_topic, station.key, value, None, station.partition))

    def _publish(self, batch: _Batch) -> None:
        broker = self.broker
        broker.begin()
        try:
            for topic, key, value, headers, partition in batch.outputs:
                broker.produce(topic, key, value, headers, partition)
            broker.commit(batch.marks)
        except TransactionAbortedError:
            # Nothing of this batch is visible and its offsets did not move, but the state did:
            # forget everything and re-read from the committed offsets, as a new owner would.
            log.warning("transaction aborted; rebuilding state from the committed offsets")
            self.metrics.transactions.labels(outcome="aborted").inc()
            self._held.clear()
            self._drop({station.partition for station in self._stations.values()})
            broker.rewind()
            return
        for partition, mark in batch.marks.items():
            self._committed[partition] = mark.next_offset
        self._count(batch)

    def _count(self, batch: _Batch) -> None:
        metrics = self.metrics
        for outcome, count in batch.outcomes.items():
            if count:
                metrics.readings.labels(outcome=outcome).inc(count)
        for reason, count in batch.dead.items():
            metrics.readings.labels(outcome="invalid").inc(count)
            metrics.dead_letters.labels(reason=reason).inc(count)
        if batch.scored:
            metrics.windows_scored.inc(batch.scored)
        for reason, count in batch.skipped.items():
            metrics.windows_skipped.labels(reason=reason).inc(count)
        if batch.scoring_s is not None:
            metrics.scoring_seconds.observe(batch.scoring_s)
            metrics.batch_windows.observe(batch.scored)
        if batch.latencies_ms:
            published_ms = self.clock.now() * 1000.0
            for produced_ms in batch.latencies_ms:
                metrics.decision_latency.observe(max(0.0, (published_ms - produced_ms) / 1000.0))
        if batch.alerts:
            stations = self._stations
            for alert in batch.alerts:
                metrics.alerts.labels(kind=alert.kind, status=alert.status, severity=alert.severity).inc()
                # Alerts are in event-time order per station, so the station's last one here wins.
                if alert.kind == "incident" and alert.status != "close" and alert.contributions:
                    station = stations.get(alert.station_id)
                    if station is not None:
                        station.contributions = tuple((c.sensor, c.share) for c in alert.contributions)
            metrics.open_incidents.set(self._tracker.open_incidents())
        metrics.transactions.labels(outcome="committed").inc()

    def _housekeeping(self) -> None:
        now = self._monotonic()
        healthy = self.broker.healthy()
        if healthy:
            self._down_since = None
        elif self._down_since is None:
            self._down_since = now
        elif now - self._down_since > self.settings.broker_outage_limit_s:
            raise BrokerError(
                "Kafka unreachable for more than "
                f"broker_outage_limit_s={self.settings.broker_outage_limit_s:g} s"
            )
        if now < self._next_lag:
            return
        self._next_lag = now + self.settings.lag_interval_s
        self.metrics.set_lag(self.broker.lag())
        self.metrics.broker_up.set(1 if healthy else 0)

    # -- what the scrape shows ---------------------------------------------------------------
    def _station_views(self) -> Iterator[StationView]:
        tracker = self._tracker
        # list() copies in one C call, so the scrape thread never iterates a dict being resized.
        for station_id, station in list(self._stations.items()):
            newest = station.buffer.newest
            yield StationView(
                station_id=station_id,
                score=station.score,
                threshold=station.threshold,
                incident_open=tracker.is_open(station_id),
                newest_event_s=None if newest is None else newest.timestamp(),
                last_arrival_s=station.last_arrival,
                contributions=station.contributions,
            )

    def station_count(self) -> int:
        return len(self._stations)
