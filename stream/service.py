"""The detector loop, transport only: poll, hand each message to the core, publish, commit.

Every decision between two Kafka calls is ``detector.engine.Engine``'s. One iteration (``step``):
``consume`` up to ``max_batch`` messages; each reading to ``Engine.admit`` (a refusal becomes a dead
letter), or to ``Engine.rebuild`` when it lies below its partition's committed offset (the previous
owner already published it), each line record to ``Engine.add_line_record``; ``Engine.close_idle``;
the windows of ``Engine.work()`` scored in one ``Bundle.score`` call; ``Engine.finish`` returns the
outputs by kind, mapped here to topics. Dead letters and outputs are produced and committed with
the consumed offsets in one Kafka transaction; metrics move once, after the commit. An aborted
transaction drops all state and re-reads from the committed offsets. What stays here: the
partitions held, the offsets committed, which partitions are being rebuilt, broker health and lag.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta

from detector.bundle import FORMAT_VERSION, Bundle
from detector.clock import SYSTEM_CLOCK, MonotonicClock, WallClock
from detector.engine import ALERT, LINE, SCORE, STATE, Engine, OutputKind
from detector.errors import BrokerError
from detector.line_table import LineTable, MonitorFactory, line_monitor
from detector.stations import StationTable
from stream.metrics import DetectorMetrics
from stream.outbox import Outbox
from stream.ports import Assigned, Broker, Mark, Partition, SourceMessage, TransactionAbortedError
from stream.reload import BundleWatcher
from stream.settings import Settings

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
        clock: WallClock = SYSTEM_CLOCK,
        watcher: BundleWatcher | None = None,
        monotonic: MonotonicClock = SYSTEM_CLOCK,
        monitor_factory: MonitorFactory = line_monitor,
    ) -> None:
        """``clock``: wall time (alerts' ``emitted_at``, the idle and future-timestamp rules);
        ``monotonic``: the outage limit and the lag interval."""
        self.settings, self.broker, self.metrics, self.watcher = settings, broker, metrics, watcher
        self._monotonic = monotonic
        self.clock = clock
        self.engine = Engine(bundle, settings.engine_settings(), clock=clock, monitor_factory=monitor_factory)
        self._held: set[Partition] = set()
        self._committed: dict[Partition, int] = {}  # next offset committed by this instance
        self._rebuild_until: dict[int, int] = {}  # readings partition -> its committed offset
        self._next_lag = 0.0
        self._down_since: float | None = None
        topics = settings.topics
        # The internal topic a line's readings meet on; empty without a line (nothing of it exists).
        self.line_topic = "" if self.lines is None else topics.line or f"{topics.readings}.line"
        self._topic_of: dict[OutputKind, str] = {
            ALERT: topics.alerts,
            SCORE: topics.scores,
            STATE: topics.state,
            LINE: self.line_topic,
        }
        metrics.set_model(bundle.model_version, FORMAT_VERSION)
        metrics.watch_stations(self.engine.station_views, clock)
        metrics.watch_segments(self.engine.segment_views)
        metrics.broker_up.set(1)

    @property
    def bundle(self) -> Bundle:
        return self.engine.bundle

    @property
    def stations(self) -> StationTable:
        return self.engine.stations

    @property
    def lines(self) -> LineTable | None:
        return self.engine.lines

    @property
    def model_version(self) -> str:
        return self.engine.bundle.model_version

    def rebuild_horizon(self) -> timedelta:
        return self.engine.rebuild_horizon()

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
        self.engine.restore(stations, lines, self.clock.now().timestamp())

    def revoked(self, partitions: Sequence[Partition]) -> None:
        # State stays until the next assignment says whether these partitions come back unchanged.
        for topic, partition in partitions:
            if topic != self.line_topic:
                self._rebuild_until.pop(partition, None)

    def _drop(self, partitions: set[Partition]) -> None:
        if not partitions:
            return
        line = self.line_topic
        self.engine.drop({p for t, p in partitions if t != line}, {p for t, p in partitions if t == line})
        for key in partitions:
            self._committed.pop(key, None)
        self.metrics.open_incidents.set(self.engine.open_incidents())

    # -- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set; then finish the batch in hand, publish, commit and close."""
        self.broker.start(self, int(self.rebuild_horizon().total_seconds() * 1000), self.line_topic)
        settings = self.settings
        log.info(
            "detector running: model %s, topic %s, group %s",
            self.model_version,
            settings.topics.readings,
            settings.group_id,
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
        engine, settings = self.engine, self.settings
        if self.watcher is not None:
            fresh = self.watcher.poll(engine.bundle)
            if fresh is not None:
                engine.use(fresh)
                self.metrics.set_model(fresh.model_version, FORMAT_VERSION)
        messages = self.broker.consume(settings.max_batch, settings.poll_timeout_s)
        now = self.clock.now().timestamp()
        batch = Outbox()
        if messages:
            self._ingest(messages, now, batch)
        skipped = engine.close_idle(now)
        if skipped:
            self.metrics.gap_windows_skipped.inc(skipped)
        work = engine.work()
        scores = None
        if work is not None:
            started = time.perf_counter()
            scores = engine.bundle.score(work.station_ids, work.windows)
            batch.scoring_s = time.perf_counter() - started
        batch.decided = engine.finish(now, scores)
        if not batch.empty():
            self._publish(batch)
        self._housekeeping()
        return len(messages)

    def _ingest(self, messages: Sequence[SourceMessage], now: float, batch: Outbox) -> None:
        """The hot path: each message to the core; a few hundred ns of our own per message."""
        engine, dlq = self.engine, self.settings.topics.dlq
        admit, rebuild_until, line_topic = engine.admit, self._rebuild_until, self.line_topic
        last: dict[int, SourceMessage] = {}  # readings partition -> its last message at or past the commit
        last_line: dict[int, SourceMessage] = {}
        rebuilt = 0
        for message in messages:
            if message.error() is not None:
                continue
            partition = message.partition() or 0
            if line_topic and message.topic() == line_topic:
                last_line[partition] = message
                why = engine.add_line_record(message.key(), message.value(), partition, now)
                if why is not None:
                    log.warning("line record %s/%s skipped: %s", partition, message.offset(), why)
                continue
            if rebuild_until and (message.offset() or 0) < rebuild_until.get(partition, -1):
                engine.rebuild(message.value(), message.key(), partition, now, message.timestamp()[1])
                rebuilt += 1
                continue
            last[partition] = message
            refused = admit(message.value(), message.key(), partition, now, message.timestamp()[1])
            if refused is not None:
                batch.dead_letter(dlq, message, refused.reason, refused.detail)
        for partition, message in last.items():
            batch.marks[(message.topic() or "", partition)] = Mark(
                (message.offset() or 0) + 1, message.timestamp()[1]
            )
            rebuild_until.pop(partition, None)  # past the committed offset: rebuilding is over
        for partition, message in last_line.items():
            batch.marks[(line_topic, partition)] = Mark((message.offset() or 0) + 1, message.timestamp()[1])
        if rebuilt:
            # Counted now: a batch of re-read messages alone publishes and commits nothing.
            self.metrics.rebuilt_readings.inc(rebuilt)

    def _publish(self, batch: Outbox) -> None:
        broker, topic_of = self.broker, self._topic_of
        broker.begin()
        try:
            for out in batch.dead_letters:
                broker.produce(out.topic, out.key, out.value, out.headers, out.partition)
            for record in batch.decided.records:
                broker.produce(topic_of[record.kind], record.key, record.value, None, record.partition)
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
        self.engine.committed(batch.decided)
        self.metrics.count_batch(batch, self.clock.now().timestamp(), self.engine.open_incidents())

    def _housekeeping(self) -> None:
        now = self._monotonic.monotonic()
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
