"""The sending half of a replay: prepared batches onto a Kafka topic, paced or flat out.

Python API (used by the CLI, the tests, the demo and the evaluation)::

    from replay.producer import ReplayOptions, replay_csv
    summary = replay_csv("readings.csv", "centinela.readings", ReplayOptions(speed=60.0),
                         {"bootstrap.servers": "127.0.0.1:9092"})
    print(summary.delivered, summary.delivery_errors, summary.readings_per_s)

The topic is created with ``options.partitions`` when missing (``kafkakit.admin.ensure_topic``).
``replay_frame(df, ...)`` does the same for a DataFrame with the same columns as a file.

The producer is idempotent (``acks=all``), lingers and compresses; it asks librdkafka for delivery
reports of failures only, so a healthy run costs no Python call per message, while every failed
message is still counted (never silently lost): ``delivered = queued - delivery_errors`` once the
final flush has returned with nothing left in the queue.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from detector.clock import SYSTEM_CLOCK, MonotonicClock
from detector.errors import BrokerError, ConfigError
from kafkakit.admin import ensure_topic
from kafkakit.errors import kafka_errors
from replay.csv_source import FrameSource, RejectedRow, SourceOptions
from replay.disorder import DisorderOptions
from replay.pacing import Pacer
from replay.prepare import PreparedBlock, inline_or_process, prepare

logger = logging.getLogger(__name__)
_KAFKA_LOG = logging.getLogger("replay.kafka")

COMPRESSIONS = ("lz4", "zstd", "snappy", "gzip", "none")
# Messages handed to produce() between two poll(0) calls (and the most a pacing slice sends at once).
SEND_SLICE = 16384
KEPT_REJECTS = 100
LOGGED_REJECTS = 20


@dataclass(frozen=True)
class ReplayOptions:
    """Everything a replay does besides where it reads and writes."""

    source: SourceOptions = field(default_factory=SourceOptions)
    disorder: DisorderOptions = field(default_factory=DisorderOptions)
    speed: float | None = None  # None: as fast as possible; 60: an hour of data per minute
    passes: int | None = 1  # None: loop until interrupted
    partitions: int = 6  # for a topic that does not exist yet
    compression: str = "lz4"
    linger_ms: int = 25
    flush_timeout_s: float = 60.0
    use_process: bool = True  # parse and encode in a helper process (files only)

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise ConfigError(f"compression must be one of {', '.join(COMPRESSIONS)}")
        if self.partitions < 1:
            raise ConfigError("partitions must be at least 1")
        if self.passes is not None and self.passes < 1:
            raise ConfigError("passes must be at least 1 (or None to loop forever)")
        if self.speed is not None and not self.speed > 0:
            raise ConfigError("speed must be positive (or None for as fast as possible)")


@dataclass
class ReplaySummary:
    rows_read: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rejects: list[RejectedRow] = field(default_factory=list)  # the first KEPT_REJECTS
    filtered: int = 0  # valid rows left out by the station filter or the time cut
    dropped: int = 0
    duplicated: int = 0
    queued: int = 0
    delivered: int = 0
    delivery_errors: int = 0
    first_delivery_error: str | None = None
    passes: int = 0
    seconds: float = 0.0
    send_span_s: float = 0.0  # from handing the first reading to the producer to the last
    interrupted: bool = False

    @property
    def readings_per_s(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["rejects"] = [str(row) for row in self.rejects]
        body["readings_per_s"] = self.readings_per_s
        return body


class Sink(Protocol):
    """Where readings go: the Kafka producer, or a list in tests."""

    def send(self, values: list[bytes], keys: list[bytes]) -> None: ...

    def wait(self, seconds: float) -> None: ...

    def finish(self, timeout_s: float) -> tuple[int, int, str | None]:
        """Flush; returns (queued, delivery errors, first error text)."""
        ...


def producer_config(client_config: Mapping[str, Any], compression: str, linger_ms: int) -> dict[str, Any]:
    """librdkafka settings for a fast, idempotent, keyed producer on top of the connection settings."""
    return {
        **client_config,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": linger_ms,
        "batch.num.messages": 100_000,
        "batch.size": 1_000_000,
        "compression.type": compression,
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        # The Java client's partitioner, so other producers of the same station keys agree with us.
        "partitioner": "murmur2_random",
        "delivery.report.only.error": True,
    }


class KafkaSink:
    """A confluent-kafka producer with failure-only delivery reports."""

    def __init__(self, topic: str, config: Mapping[str, Any]) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.queued = 0
        self.errors = 0
        self.first_error: str | None = None
        self.fatal: str | None = None
        with kafka_errors("invalid producer settings"):
            self._producer = Producer(
                # librdkafka's own log lines go through logging (JSON lines off a terminal), not raw stderr.
                {**config, "on_delivery": self._delivered, "error_cb": self._error, "logger": _KAFKA_LOG}
            )

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.errors += 1
            if self.first_error is None:
                self.first_error = str(error)
                logger.error("delivery failed: %s", error)

    def _error(self, error: Any) -> None:
        if error.fatal():
            self.fatal = str(error)
        logger.warning("kafka: %s", error)

    def send(self, values: list[bytes], keys: list[bytes]) -> None:
        produce = self._producer.produce
        poll = self._producer.poll
        topic = self.topic
        pairs = zip(values, keys, strict=True)
        while True:
            try:
                for value, key in pairs:
                    produce(topic, value, key)
                break
            except BufferError:
                # The queue is full: serve the broker until the message that bounced fits, then go on.
                while True:
                    poll(0.05)
                    try:
                        produce(topic, value, key)
                        break
                    except BufferError:
                        continue
        self.queued += len(values)
        poll(0)
        if self.fatal is not None:
            raise BrokerError(f"the producer hit a fatal error: {self.fatal}")

    def wait(self, seconds: float) -> None:
        self._producer.poll(seconds)

    def finish(self, timeout_s: float) -> tuple[int, int, str | None]:
        left = self._producer.flush(timeout_s)
        if left:
            # What could not be delivered in time is a delivery failure, not a silent loss.
            self._producer.purge()
            self._producer.flush(5.0)
            self.errors = max(self.errors, left)
            self.first_error = self.first_error or f"{left} messages not delivered within {timeout_s:g} s"
        # The producer and this sink reference each other (its callbacks are our methods): drop it now
        # so its threads stop here, not whenever the garbage collector gets to the cycle.
        del self._producer
        return self.queued, self.errors, self.first_error


def run(
    prepared: Iterable[PreparedBlock],
    sink: Sink,
    *,
    speed: float | None,
    clock: MonotonicClock = SYSTEM_CLOCK,
    on_block: Callable[[PreparedBlock], None] | None = None,
    flush_timeout_s: float = 60.0,
) -> ReplaySummary:
    """Send every prepared batch through ``sink`` on the pacer's schedule, then flush and sum up."""
    pacer = Pacer(speed, clock)
    summary = ReplaySummary()
    reasons: Counter[str] = Counter()
    marks: list[float] = []  # clock time of the first send and of the latest one
    started = time.perf_counter()
    try:
        for block in prepared:
            summary.rows_read += block.rows_read
            summary.filtered += block.filtered
            summary.dropped += block.dropped
            summary.duplicated += block.duplicated
            summary.passes = max(summary.passes, block.pass_index + 1)
            for row in block.rejected:
                reasons[row.reason] += 1
                summary.rejected += 1
                if block.pass_index > 0:
                    continue  # counted again (the file was read again), but named once
                if len(summary.rejects) < KEPT_REJECTS:
                    summary.rejects.append(row)
                if summary.rejected <= LOGGED_REJECTS:
                    logger.warning("skipped bad row, %s", row)
            batch = block.batch
            if len(batch):
                schedule = pacer.schedule(batch.schedule_ns)
                _send_batch(batch.messages(), batch.key_list(), schedule, pacer, sink, clock, marks)
            if on_block is not None:
                on_block(block)
    except KeyboardInterrupt:
        summary.interrupted = True
        logger.warning("interrupted: flushing what was queued")
    finally:
        queued, errors, first_error = sink.finish(flush_timeout_s)
        summary.queued = queued
        summary.delivery_errors = errors
        summary.delivered = queued - errors
        summary.first_delivery_error = first_error
        summary.seconds = time.perf_counter() - started
        summary.send_span_s = marks[-1] - marks[0] if marks else 0.0
        summary.rejected_by_reason = dict(reasons)
    if summary.rejected > LOGGED_REJECTS:
        logger.warning(
            "%d bad rows skipped in all (only the first %d logged)", summary.rejected, LOGGED_REJECTS
        )
    return summary


def _send_batch(  # noqa: PLR0917 - a private helper of run()'s hot loop
    values: list[bytes],
    keys: list[bytes],
    schedule: Any,
    pacer: Pacer,
    sink: Sink,
    clock: MonotonicClock,
    marks: list[float],
) -> None:
    start, n = 0, len(values)
    while start < n:
        due = pacer.due(schedule, start)
        if due.stop == start:
            sink.wait(min(due.wait_s, 0.1))
            continue
        stop = min(due.stop, start + SEND_SLICE)
        now = clock.monotonic()
        if marks:
            marks[1:] = [now]
        else:
            marks.append(now)
        if start == 0 and stop == n:
            sink.send(values, keys)
        else:
            sink.send(values[start:stop], keys[start:stop])
        start = stop


def replay_csv(
    path: Path | str,
    topic: str,
    options: ReplayOptions,
    client_config: Mapping[str, Any],
    on_block: Callable[[PreparedBlock], None] | None = None,
) -> ReplaySummary:
    """Replay a CSV file onto ``topic`` (created with ``options.partitions`` when missing)."""
    # The helper process starts before any Kafka client exists, so forking it copies no client threads.
    blocks, release = inline_or_process(
        Path(path), options.source, options.disorder, options.passes, options.use_process
    )
    try:
        ensure_topic(client_config, topic, options.partitions)
        sink = KafkaSink(topic, producer_config(client_config, options.compression, options.linger_ms))
        return run(
            blocks, sink, speed=options.speed, on_block=on_block, flush_timeout_s=options.flush_timeout_s
        )
    finally:
        release()


def replay_frame(
    frame: pd.DataFrame,
    topic: str,
    options: ReplayOptions,
    client_config: Mapping[str, Any],
    on_block: Callable[[PreparedBlock], None] | None = None,
) -> ReplaySummary:
    """Replay a DataFrame laid out like a CSV (timestamp, optional station, sensor columns)."""
    source = FrameSource(frame, options.source)
    blocks = prepare(source, source.layout.sensors, options.disorder, options.passes)
    ensure_topic(client_config, topic, options.partitions)
    sink = KafkaSink(topic, producer_config(client_config, options.compression, options.linger_ms))
    return run(blocks, sink, speed=options.speed, on_block=on_block, flush_timeout_s=options.flush_timeout_s)
