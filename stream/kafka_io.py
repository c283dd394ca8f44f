"""The Kafka adapter of ``stream.ports.Broker``: one consumer, one (transactional) producer.

Exactly once: the producer is transactional (``transactional.id`` = group + instance) and every
batch's alerts, scores and dead letters are committed in one transaction together with the
consumer's offsets (``send_offsets_to_transaction``); the consumer reads ``read_committed`` and
never auto-commits. Each committed offset carries, as its metadata, the produce time of the last
message processed: the next owner of the partition seeks back from there by the rebuild horizon
(``offsets_for_times``) and re-reads what it needs to rebuild the windows.

confluent-kafka's exceptions stop here: they become ``detector.errors.BrokerError``
(``kafkakit.errors.kafka_errors``).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, cast

from detector.clock import SYSTEM_CLOCK, MonotonicClock
from detector.errors import BrokerError
from detector.records import line_of_state_key
from kafkakit.admin import ensure_topic
from kafkakit.config import kafka_client_config
from kafkakit.errors import is_transient, kafka_error, kafka_errors
from kafkakit.read import iter_to_end
from stream.client_logs import librdkafka_logger
from stream.dead_letters import fit_dead_letter, usable_limit
from stream.ports import (
    Assigned,
    AssignmentListener,
    Headers,
    Mark,
    Partition,
    SourceMessage,
    TransactionAbortedError,
)
from stream.settings import Settings

log = logging.getLogger(__name__)

_TIMEOUT_S = 30.0
# How much longer than the timeout it was given a transactional call may take before it is abandoned.
_STUCK_MARGIN_S = 5.0
_STOP_SLICE_S = 0.25


class _StuckCallError(Exception):
    """A librdkafka call ran far past the timeout it was given."""


class _GuardedCalls:
    """Runs a producer's transactional calls on a daemon thread, each with a deadline.

    librdkafka can block in ``send_offsets_to_transaction`` long past its timeout when the group
    coordinator it cached before a broker restart is gone (librdkafka#5456 and #5511, open; seen here
    with the one local broker stopped for 20 s: the service hung without a word). A call past its
    deadline is given up on together with its producer and this thread, which stays blocked.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[Callable[[], object], Future[None]]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="kafka-transactions", daemon=True).start()

    def _serve(self) -> None:
        while True:
            call, future = self._requests.get()
            try:
                call()
            except BaseException as error:  # handed to the caller, whatever it is
                future.set_exception(error)
            else:
                future.set_result(None)

    def run(
        self, call: Callable[[], object], deadline_s: float, what: str, stop: threading.Event | None = None
    ) -> None:
        future: Future[None] = Future()
        self._requests.put((call, future))
        deadline = time.monotonic() + deadline_s
        while True:  # in slices, so that SIGTERM is honoured while Kafka does not answer
            if stop is not None and stop.is_set():
                raise BrokerError(f"stopped while waiting for Kafka ({what})")
            try:
                future.result(timeout=min(_STOP_SLICE_S, max(0.0, deadline - time.monotonic())))
                return
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise _StuckCallError(f"{what} did not return within {deadline_s:g} s") from None


class KafkaBroker:
    """``Broker`` over confluent-kafka; build it with ``KafkaBroker(settings)``."""

    def __init__(
        self, settings: Settings, *, clock: MonotonicClock = SYSTEM_CLOCK, stop: threading.Event | None = None
    ) -> None:
        """``stop`` (set by SIGTERM/SIGINT) interrupts waits on an unresponsive Kafka."""
        from confluent_kafka import Consumer, Producer

        self._settings = settings
        self._stop = stop or threading.Event()
        self._topic = settings.topics.readings
        self._now = clock.monotonic
        self._down_since: float | None = None
        self._fatal: str | None = None  # the first fatal error a client reported (error_cb)
        # Set when librdkafka gave up our group session (on_lost), or when an outage ended (its
        # monotonic time): a fence that follows closely is our own rejoin's (see _rejoin).
        self._session_lost = False
        self._outage_ended_at: float | None = None
        self._topics: list[str] = []
        self._next_probe = 0.0
        self._delivery_failures: list[str] = []
        self._listener: AssignmentListener | None = None
        self._horizon_ms = 0
        self._assignment: list[Partition] = []
        self._line_topic = ""
        self._dlq_topic = settings.topics.dlq
        self._dlq_limit = 1_000_000  # read at start (see _read_dead_letter_limit)
        self._in_transaction = False
        self._call_timeout_s = settings.transaction_timeout_s
        self._outage_limit_s = settings.broker_outage_limit_s
        self._calls = _GuardedCalls()
        # Producers given up on with a call still blocked inside them: destroying one would block too.
        self._abandoned: list[Any] = []
        common = kafka_client_config(settings.kafka)
        self._exactly_once = settings.exactly_once
        consumer_config: dict[str, Any] = {
            **common,
            "logger": librdkafka_logger(),
            "group.id": settings.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "range",
            "error_cb": self._on_error,
            "fetch.wait.max.ms": 50,
            # The prefetch queue defaults to 64 MB; 16 MB (~80,000 readings) keeps every batch full
            # and the resident memory of a backlogged detector well inside its 400 MB budget.
            "queued.max.messages.kbytes": 16384,
        }
        if settings.static_membership:
            consumer_config["group.instance.id"] = settings.instance_id
        producer_config: dict[str, Any] = {
            **common,
            "logger": librdkafka_logger(),
            "enable.idempotence": True,
            "linger.ms": 5,
            # Right after a commit the coordinator answers the next transaction's first request with
            # CONCURRENT_TRANSACTIONS until its markers are written; the default 100 ms retry backoff
            # then adds ~100 ms to most batches (measured: 100 ms -> 10 ms per transaction here).
            "retry.backoff.ms": 10,
            "error_cb": self._on_error,
            "on_delivery": self._on_delivery,
            "delivery.report.only.error": True,
        }
        if self._exactly_once:
            producer_config["transactional.id"] = settings.transactional_id
            producer_config["transaction.timeout.ms"] = int(settings.transaction_timeout_s * 1000)
        self._producer_config = producer_config
        self._consumer_config = consumer_config
        try:
            self._consumer = Consumer(consumer_config)
            self._producer = Producer(producer_config)
        except Exception as error:  # KafkaException or a TypeError/ValueError from a bad property
            raise BrokerError(f"cannot create the Kafka clients: {error}") from error

    # -- health ----------------------------------------------------------------------------
    def _on_error(self, error: Any) -> None:
        from confluent_kafka import KafkaError

        code = error.code()
        if code in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE):
            if self._down_since is None:
                self._down_since = self._now()
                log.warning("Kafka unreachable: %s", error.str())
        else:
            log.warning("Kafka client error: %s", error.str())
        if error.fatal():
            # A fatal error (a static member fenced by another with its instance id, a fenced
            # producer) leaves the client unusable: the next consume ends the process with it.
            # Before, the detector stayed alive for minutes, silent, consuming nothing.
            log.error("Kafka fatal error: %s", error.str())
            if self._fatal is None:
                self._fatal = error.str()

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is not None:
            self._delivery_failures.append(f"{message.topic()}: {error.str()}")

    def _mark_up(self) -> None:
        if self._down_since is not None:
            log.info("Kafka reachable again after %.1f s", self._now() - self._down_since)
            self._down_since = None
            self._outage_ended_at = self._now()

    def _fenced_by_own_rejoin(self) -> bool:
        """Whether a fence now most likely answers our own rejoin: librdkafka gave the session up
        (on_lost), or the cluster is or was unreachable within the last session timeout (the fence
        is seen once the broker answers again; on_lost does not always come first)."""
        if self._session_lost or self._down_since is not None:
            return True
        session_s = float(self._consumer_config.get("session.timeout.ms", 45_000)) / 1000
        ended = self._outage_ended_at
        return ended is not None and self._now() - ended < session_s

    def healthy(self) -> bool:
        """False while the cluster is unreachable. When readings stop with it, nothing else would
        say it is back, so a down broker is probed with a metadata request (at most every 2 s)."""
        if self._down_since is not None and self._now() >= self._next_probe:
            self._next_probe = self._now() + 2.0
            try:
                self._consumer.list_topics(self._topic, timeout=1.0)
            except Exception as error:  # KafkaException: still down
                log.debug("Kafka still unreachable: %s", error)
            else:
                self._mark_up()
        return self._down_since is None

    def down_for(self) -> float:
        return 0.0 if self._down_since is None else self._now() - self._down_since

    # -- assignment ------------------------------------------------------------------------
    def start(self, listener: AssignmentListener, rebuild_horizon_ms: int, line_topic: str = "") -> None:
        """Subscribe (to the line topic too, creating it when missing); with exactly-once, also register
        the transactional id (fencing a previous holder)."""

        self._listener = listener
        self._horizon_ms = rebuild_horizon_ms
        self._line_topic = line_topic
        if line_topic:
            self._ensure_line_topic(line_topic)
        self._dlq_limit = self._read_dead_letter_limit()
        if self._exactly_once:
            self._init_transactions()
        self._topics = [self._topic, line_topic] if line_topic else [self._topic]
        self._subscribe()

    def _subscribe(self) -> None:
        topics = self._topics
        with kafka_errors(f"cannot start on {', '.join(topics)}"):
            self._consumer.subscribe(
                topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )

    def _ensure_line_topic(self, topic: str) -> None:
        """Create the internal line topic, as many partitions as the readings topic, if it is missing
        (Kafka Streams creates its repartition topics the same way)."""
        with kafka_errors(f"cannot create the line topic {topic}"):
            readings = self._consumer.list_topics(self._topic, timeout=_TIMEOUT_S).topics.get(self._topic)
        partitions = len(readings.partitions) if readings is not None and readings.partitions else 1
        ensure_topic(kafka_client_config(self._settings.kafka), topic, partitions, _TIMEOUT_S)

    def _read_dead_letter_limit(self) -> int:
        """The largest dead letter that can be produced: the smaller of the producer's
        ``message.max.bytes`` and the dead-letter topic's ``max.message.bytes`` (the broker's
        ``message.max.bytes`` when the topic does not exist yet). A limit that cannot be read (no
        DescribeConfigs permission) leaves the producer's, with a warning."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

        producer_limit = int(self._producer_config.get("message.max.bytes", 1_000_000))
        topic_limit: int | None = None
        try:
            admin = AdminClient(dict(kafka_client_config(self._settings.kafka)))
            metadata = self._consumer.list_topics(timeout=_TIMEOUT_S)
            if self._dlq_topic in metadata.topics and not metadata.topics[self._dlq_topic].error:
                resource, name = ConfigResource("topic", self._dlq_topic), "max.message.bytes"
            else:  # auto-created on the first dead letter: the broker's default applies
                broker_id = str(min(metadata.brokers)) if metadata.brokers else "0"
                resource, name = ConfigResource("broker", broker_id), "message.max.bytes"
            for future in admin.describe_configs([resource], request_timeout=_TIMEOUT_S).values():
                entry = future.result(timeout=_TIMEOUT_S).get(name)
                if entry is not None and entry.value is not None:
                    topic_limit = int(entry.value)
        except (KafkaException, ValueError) as error:
            log.warning(
                "cannot read the size limit of %s (%s): dead letters are kept under the producer's "
                "message.max.bytes=%d",
                self._dlq_topic,
                kafka_error(error) or error,
                producer_limit,
            )
        limit = usable_limit(producer_limit, topic_limit)
        log.info("dead letters are kept under %d bytes (larger ones are stored truncated)", limit)
        batch_size = int(self._producer_config.get("batch.size", 1_000_000))
        if topic_limit is not None and topic_limit < batch_size:
            # The broker checks whole batches; librdkafka does not split a refused one.
            log.warning(
                "%s takes %d bytes per batch but the producer batches up to batch.size=%d: set "
                "kafka.extra batch.size to at most %d, or several large dead letters in one batch "
                "can still be refused",
                self._dlq_topic,
                topic_limit,
                batch_size,
                topic_limit,
            )
        return limit

    def _init_transactions(self) -> None:
        """Register the transactional id, fencing any earlier producer that used it (its open
        transaction is aborted, or finished if it was already committing)."""
        producer = self._producer
        try:
            with kafka_errors("cannot start transactions"):
                self._transactional_call(
                    "init_transactions",
                    lambda: producer.init_transactions(self._call_timeout_s),
                    interruptible=True,
                )
        except _StuckCallError as stuck:
            raise BrokerError(f"cannot start transactions: {stuck}") from stuck

    def _replace_producer(self, reason: str) -> None:
        from confluent_kafka import Producer

        log.error(
            "Kafka producer stuck (%s); starting a new one: the unfinished transaction is aborted "
            "and the partitions are re-read from their committed offsets",
            reason,
        )
        self._abandoned.append(self._producer)
        self._calls = _GuardedCalls()
        self._producer = Producer(self._producer_config)
        self._in_transaction = False
        self._init_transactions()

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        try:
            self._assign(consumer, partitions)
        except Exception:
            # An exception inside a librdkafka callback would be swallowed; log it loudly and re-raise.
            log.exception("assignment of %s failed", [tp.partition for tp in partitions])
            raise

    def _assign(self, consumer: Any, partitions: list[Any]) -> None:
        from confluent_kafka import TopicPartition

        listener = self._listener
        assert listener is not None  # set by start() before subscribe
        committed = (
            self._transient_retry(
                "reading the committed offsets", lambda: consumer.committed(partitions, timeout=_TIMEOUT_S)
            )
            if partitions
            else []
        )
        assigned = [Assigned(tp.topic, tp.partition, max(tp.offset, 0)) for tp in committed]
        keep = listener.assigned(assigned)
        state_topic = self._settings.topics.state
        fresh = {(tp.topic, tp.partition) for tp in committed if (tp.topic, tp.partition) not in keep}
        if state_topic and fresh:
            self._restore(listener, state_topic, fresh)
        positioned = []
        rebuild: dict[int, tuple[int, int]] = {}
        for tp in committed:
            start = tp.offset  # OFFSET_INVALID (-1001) -> auto.offset.reset
            # Readings only: a line partition's state comes whole from the state topic.
            fresh_readings = tp.topic == self._topic and (tp.topic, tp.partition) in fresh
            if fresh_readings and tp.offset >= 0 and tp.metadata:
                try:
                    stamp = int(tp.metadata)
                except ValueError:
                    stamp = -1
                if stamp > 0:
                    target = TopicPartition(self._topic, tp.partition, max(0, stamp - self._horizon_ms))
                    (found,) = self._transient_retry(
                        "finding the rebuild offset",
                        functools.partial(consumer.offsets_for_times, [target], timeout=_TIMEOUT_S),
                    )
                    if 0 <= found.offset < tp.offset:
                        start = found.offset
                        rebuild[tp.partition] = (found.offset, tp.offset)
            positioned.append(TopicPartition(tp.topic, tp.partition, start))
        consumer.assign(positioned)
        self._assignment = sorted((tp.topic, tp.partition) for tp in positioned)
        for partition, (begin, end) in sorted(rebuild.items()):
            log.info("partition %d: re-reading offsets %d..%d to rebuild windows", partition, begin, end - 1)
        log.info("assigned partitions %s", self._assignment)

    def _transient_retry(self, what: str, call: Callable[[], Any]) -> Any:
        """``call()``, retried with backoff (0.5 s doubling to 5 s) while it fails with a transient
        error (``is_transient``), for up to ``broker_outage_limit_s``; past that, or on any other
        error, ``BrokerError`` naming ``what`` and the reason.

        The case it is for: a member SIGKILLed inside a transaction leaves its partitions' committed
        offsets unstable until the broker aborts that transaction (``transaction_timeout_s`` plus
        the broker's 10 s abort check); the survivor's one 30 s ``committed`` call timed out and it
        exited, stopping the last detector of the line."""
        from confluent_kafka import KafkaException

        started = self._now()
        delay = 0.5
        while True:
            try:
                return call()
            except (KafkaException, BrokerError) as raised:
                # The kit's calls raise BrokerError from the KafkaException: judge the cause.
                error = raised.__cause__ if isinstance(raised, BrokerError) else raised
                if not isinstance(error, KafkaException):
                    raise
                waited = self._now() - started
                reason = kafka_error(error)
                reason_text = reason.str() if hasattr(reason, "str") else str(error)
                if not is_transient(error):
                    raise BrokerError(f"{what} failed: {reason_text}") from error
                if waited + delay > self._outage_limit_s:
                    raise BrokerError(
                        f"{what} still failing after {waited:.0f} s (broker_outage_limit_s="
                        f"{self._outage_limit_s:g}): {reason_text}"
                    ) from error
                log.warning("%s failed after %.1f s, retrying: %s", what, waited, reason_text)
                time.sleep(delay)
                delay = min(5.0, delay * 2)

    def _restore(self, listener: AssignmentListener, state_topic: str, fresh: set[Partition]) -> None:
        """The state of fresh partitions: stations of fresh readings partitions, lines of fresh line
        partitions (both kept on the state topic partition with the same number)."""
        numbers = sorted({partition for _topic, partition in fresh})
        stations: dict[str, bytes] = {}
        lines: dict[str, tuple[int, bytes]] = {}
        for key, (partition, value) in self._read_state(state_topic, numbers).items():
            if line_of_state_key(key) is not None:
                if (self._line_topic, partition) in fresh:
                    lines[key] = (partition, value)
            elif (self._topic, partition) in fresh:
                stations[key] = value
        listener.restore(stations, lines)

    def _read_state(self, topic: str, partitions: list[int]) -> dict[str, tuple[int, bytes]]:
        """The latest committed state record per key on ``partitions`` of the state topic (and the
        partition it is on); keys whose latest record is a tombstone are left out. Read to each
        partition's end (``kafkakit.read.iter_to_end``), not until a pause: on a loaded broker a
        pause came before the newest records, so a new owner restored state older than its
        committed offsets (seen: segment alerts missing after a SIGKILL)."""
        reader = {
            **kafka_client_config(self._settings.kafka),
            "group.id": f"{self._settings.group_id}.state-reader",
        }

        def latest_per_key() -> dict[str, tuple[int, bytes | None]]:
            latest: dict[str, tuple[int, bytes | None]] = {}
            for message in iter_to_end(reader, topic, partitions, timeout_s=_TIMEOUT_S):
                key = message.key()
                if key is not None:
                    latest[key.decode(errors="replace")] = (message.partition() or 0, message.value())
            return latest

        # Only the latest record per key is kept (the topic is read as it comes, never held whole),
        # and a broker away while a new owner restores is waited out as any other call is, up to
        # broker_outage_limit_s: the whole read starts again, which is harmless.
        latest = self._transient_retry(f"reading the state topic {topic}", latest_per_key)
        states = {key: (p, value) for key, (p, value) in latest.items() if value is not None}
        log.info("read %d state records from %s %s", len(states), topic, partitions)
        return states

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        if consumer is not self._consumer:  # a fenced consumer being closed (_rejoin): not ours now
            consumer.unassign()
            return
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        log.info("revoked partitions %s", revoked)
        if self._listener is not None:
            self._listener.revoked(revoked)
        consumer.unassign()
        self._assignment = []

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        log.warning("lost partitions %s (session timed out)", [(tp.topic, tp.partition) for tp in partitions])
        if consumer is self._consumer:
            self._session_lost = True
        self._on_revoke(consumer, partitions)

    def _rejoin(self, reason: str) -> None:
        """A new consumer in place of one fenced by its own rejoin after a long outage.

        librdkafka times a static member's session out on its side when no heartbeat succeeds for
        ``session.timeout.ms`` (45 s) — a broker outage that long, e.g. a broker restart on a loaded
        machine — then rejoins and the broker answers FENCED_INSTANCE_ID, a fatal error
        (librdkafka#3437): no other instance is involved. A new consumer with the same instance id
        takes the membership back, as a restarted process would; its partitions are rebuilt from
        their committed offsets by the next assignment. A fence with no outage or session loss
        before it is another instance's and stays fatal (``consume``)."""
        from confluent_kafka import Consumer

        log.warning(
            "Kafka consumer fenced after an outage or a lost session (%s); a new consumer rejoins as %s",
            reason,
            self._settings.instance_id,
        )
        self._session_lost = False
        self._outage_ended_at = None
        if self._listener is not None and self._assignment:
            self._listener.revoked(self._assignment)
        self._assignment = []
        fenced = self._consumer
        # Closing a fenced consumer can wait on its coordinator; nothing of ours waits for it.
        threading.Thread(target=fenced.close, name="close-fenced-consumer", daemon=True).start()
        try:
            self._consumer = Consumer(self._consumer_config)
        except Exception as error:  # KafkaException: as at start
            raise BrokerError(f"cannot create a new Kafka consumer: {error}") from error
        self._subscribe()

    def rewind(self) -> None:
        """After an aborted transaction: re-position every partition at its committed offset (rebuilding).

        Callbacks librdkafka holds are served first: after an outage past the session timeout, the
        lost session's revocation waits for the application, and until it is served the group
        coordinator is asked nothing — ``committed`` timed out for minutes (seen on a loaded
        machine). A revocation served here leaves nothing to rewind: the next assignment rebuilds."""
        from confluent_kafka import TopicPartition

        if not self._assignment:
            return
        pending = self._consumer.poll(0)  # a reading taken here is re-read from its committed offset
        problem = None if pending is None else pending.error()
        if problem is not None and self._fatal_and_handled(problem):
            return
        if not self._assignment:
            return
        partitions = [TopicPartition(topic, partition) for topic, partition in self._assignment]
        if self._listener is not None:
            self._listener.revoked(self._assignment)
        with kafka_errors("cannot rewind after an aborted transaction"):
            self._assign(self._consumer, partitions)

    # -- reading ---------------------------------------------------------------------------
    def consume(self, max_messages: int, timeout_s: float) -> Sequence[SourceMessage]:
        if self._fatal is not None:
            raise BrokerError(f"Kafka fatal error, the client cannot go on: {self._fatal}")
        # Raised out of our assignment callback (already BrokerError-worded there, or a fatal error):
        # nothing transient is left to retry at this point.
        with kafka_errors(f"consume from {self._topic} failed"):
            # Wait for the first message only, then take what is already queued: at a low rate a
            # reading is handled as soon as it arrives (consume() alone would sit out its whole
            # timeout waiting for a full batch); at a high rate the queue fills while the previous
            # batch is scored and committed, so batches grow by themselves.
            first = self._consumer.poll(timeout_s)
            if first is None:
                return ()
            messages = [first]
            if max_messages > 1:
                messages += self._consumer.consume(num_messages=max_messages - 1, timeout=0)
        if self._fatal is not None:
            raise BrokerError(f"Kafka fatal error, the client cannot go on: {self._fatal}")
        if not messages:
            return ()
        self._mark_up()
        for message in messages:
            problem = message.error()
            if problem is not None and self._fatal_and_handled(problem):
                return ()
        return cast("Sequence[SourceMessage]", messages)

    def _fatal_and_handled(self, problem: Any) -> bool:
        """Whether ``problem`` (a message's error) was the consumer's fatal error, recovered from by
        :meth:`_rejoin`; a fatal error that is not our own fence raises ``BrokerError``.

        A consumer's fatal error arrives as a message with code _FATAL, not through error_cb, and
        that error is not flagged fatal(): checking fatal() alone let a fenced detector poll
        nothing, alive and silent, for as long as it ran."""
        from confluent_kafka import KafkaError

        if problem.code() != KafkaError._FATAL and not problem.fatal():
            return False
        if not self._fenced_by_own_rejoin():
            raise BrokerError(f"Kafka fatal error, the client cannot go on: {problem.str()}")
        self._rejoin(problem.str())
        return True

    def lag(self) -> dict[int, int]:
        from confluent_kafka import KafkaException, TopicPartition

        if not self._assignment:
            return {}
        partitions = [TopicPartition(t, partition) for t, partition in self._assignment if t == self._topic]
        lag: dict[int, int] = {}
        try:
            positions = self._consumer.position(partitions)
            # No position: nothing consumed since the assignment. Behind means behind the group's
            # committed offset then (a partition the previous owner finished is 0 behind, not its size).
            unread = [tp for tp in positions if tp.offset < 0]
            committed = {
                tp.partition: tp.offset
                for tp in (self._consumer.committed(unread, timeout=1.0) if unread else [])
            }
            for tp in positions:
                low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    continue  # nothing fetched yet: unknown, not zero
                start = tp.offset if tp.offset >= 0 else committed.get(tp.partition, -1)
                lag[tp.partition] = max(0, high - (start if start >= 0 else max(low, 0)))
        except KafkaException as error:
            log.debug("lag unavailable: %s", kafka_error(error))
        return lag

    # -- writing ---------------------------------------------------------------------------
    def begin(self) -> None:
        if not self._exactly_once or self._in_transaction:
            return
        with kafka_errors("cannot begin a transaction"):
            self._producer.begin_transaction()
        self._in_transaction = True

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        where = -1 if partition is None else partition  # -1: the partitioner decides
        if topic == self._dlq_topic:  # an oversized dead letter would stop the service: truncate it
            key, value, headers = fit_dead_letter(key, value, headers, self._dlq_limit)
        for _ in range(1000):
            try:
                with kafka_errors(f"produce to {topic} failed"):
                    self._producer.produce(
                        topic, value=value, key=key, headers=cast(Any, headers), partition=where
                    )
                return
            except BufferError:
                self._producer.poll(0.05)  # the local queue is full: let deliveries drain
        raise BrokerError(f"produce to {topic}: the producer queue stayed full")

    def commit(self, marks: Mapping[Partition, Mark]) -> None:
        """Publish what was produced since ``begin`` and commit ``marks``, atomically with exactly-once."""
        from confluent_kafka import KafkaException, TopicPartition

        offsets = [
            TopicPartition(topic, partition, mark.next_offset, str(mark.timestamp_ms))
            for (topic, partition), mark in sorted(marks.items())
        ]
        if not self._exactly_once:
            self._commit_at_least_once(offsets)
            return
        if not self._in_transaction:
            self.begin()
        producer, consumer = self._producer, self._consumer
        try:
            if offsets:
                self._transactional_call(
                    "send_offsets_to_transaction",
                    lambda: producer.send_offsets_to_transaction(
                        offsets, consumer.consumer_group_metadata(), self._call_timeout_s
                    ),
                )
            self._transactional_call(
                "commit_transaction", lambda: producer.commit_transaction(self._call_timeout_s)
            )
        except _StuckCallError as stuck:
            # Committed or not, the new producer's fencing settles it, and the committed offsets say which.
            self._replace_producer(str(stuck))
            raise TransactionAbortedError(f"transaction abandoned: {stuck}") from None
        except KafkaException as error:
            reason = kafka_error(error)
            if reason is not None and reason.txn_requires_abort():
                self.abort()
                raise TransactionAbortedError(f"transaction aborted: {reason.str()}") from error
            self._in_transaction = False
            raise BrokerError(f"transaction commit failed: {reason}") from error
        self._in_transaction = False
        self._mark_up()

    def _transactional_call(
        self, what: str, call: Callable[[], object], *, retry: bool = True, interruptible: bool = False
    ) -> None:
        """``call`` (a transactional producer method) on the guarded thread with its deadline
        (``_StuckCallError`` past it), retried while Kafka calls the failure retriable (``_retry``)
        unless ``retry`` is off."""
        calls, deadline_s = self._calls, self._call_timeout_s + _STUCK_MARGIN_S

        def attempt() -> None:
            # Only the start is interruptible: after a stop, the batch in hand is still committed.
            calls.run(call, deadline_s, what, self._stop if interruptible else None)

        if retry:
            self._retry(attempt, interruptible=interruptible)
        else:
            attempt()

    def _retry(self, operation: Callable[[], None], *, interruptible: bool = False) -> None:
        """``operation`` until it succeeds, retrying what Kafka calls retriable (a broker away, a
        coordinator moving) with backoff for up to ``broker_outage_limit_s``."""
        from confluent_kafka import KafkaException

        started = time.monotonic()
        attempt = 0
        while True:
            try:
                operation()
                return
            except KafkaException as error:
                reason = kafka_error(error)
                waited = time.monotonic() - started
                if reason is None or not reason.retriable() or waited > self._outage_limit_s:
                    raise
                log.warning("transaction step failed after %.1f s, retrying: %s", waited, reason.str())
                stop = self._stop if interruptible else threading.Event()
                if stop.wait(min(2.0, 0.1 * 2**attempt)):
                    raise BrokerError(f"stopped while waiting for Kafka: {reason.str()}") from error
                attempt += 1

    def _commit_at_least_once(self, offsets: list[Any]) -> None:
        remaining = self._producer.flush(_TIMEOUT_S)
        if remaining or self._delivery_failures:
            failures, self._delivery_failures = self._delivery_failures, []
            raise BrokerError(f"publishing failed ({remaining} undelivered): {'; '.join(failures[:3])}")
        if offsets:
            with kafka_errors("offset commit failed"):
                self._consumer.commit(offsets=offsets, asynchronous=False)

    def abort(self, *, retry: bool = True) -> None:
        """Abort the open transaction. With ``retry``, retriable failures (the broker away: seen as
        ``_TIMED_OUT``, "retry call to resume", when a commit failed during an outage) are retried
        until ``broker_outage_limit_s``, and a call stuck past its deadline gets the producer replaced
        (the new one's fencing aborts the transaction) instead of stopping the service."""
        if not self._exactly_once or not self._in_transaction:
            return
        self._in_transaction = False
        producer = self._producer
        try:
            with kafka_errors("transaction abort failed"):
                self._transactional_call(
                    "abort_transaction", lambda: producer.abort_transaction(self._call_timeout_s), retry=retry
                )
        except _StuckCallError as stuck:
            self._replace_producer(str(stuck))

    def close(self) -> None:
        """Abort any open transaction, flush, leave the group."""
        try:
            # No retrying here: a stop during an outage should not wait it out; the broker aborts
            # the transaction at its timeout, or the next producer with this id fences it.
            self.abort(retry=False)
            self._producer.flush(_TIMEOUT_S)
        finally:
            self._consumer.close()
