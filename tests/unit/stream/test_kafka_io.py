"""The Kafka adapter without a broker: client construction and error translation."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from detector.clock import ManualClock
from detector.errors import BrokerError
from stream.kafka_io import KafkaBroker
from tests.unit.stream.conftest import settings


def test_a_bad_client_property_becomes_a_broker_error() -> None:
    with pytest.raises(BrokerError, match=r"no\.such\.property"):
        KafkaBroker(settings(kafka={"bootstrap_servers": "127.0.0.1:1", "extra": {"no.such.property": "1"}}))


def test_clients_build_without_touching_the_network() -> None:
    broker = KafkaBroker(settings(kafka={"bootstrap_servers": "127.0.0.1:1"}, exactly_once=False))
    try:
        assert broker.healthy()
        assert broker.lag() == {}
    finally:
        broker.close()


@pytest.mark.slow  # waits out librdkafka's timeouts (2 s)
def test_an_unreachable_cluster_fails_start_with_a_broker_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream import kafka_io

    monkeypatch.setattr(kafka_io, "_TIMEOUT_S", 1.0)
    broker = KafkaBroker(
        settings(kafka={"bootstrap_servers": "127.0.0.1:1"}, transaction_timeout_s=1, broker_outage_limit_s=1)
    )

    class Listener:
        def assigned(self, partitions: object) -> set[int]:
            return set()

        def revoked(self, partitions: object) -> None:
            return None

    try:
        with pytest.raises(BrokerError, match="cannot start"):
            broker.start(Listener(), 0)
    finally:
        broker.close()


def test_a_call_stuck_past_its_deadline_is_given_up_and_the_next_runs_elsewhere() -> None:
    from stream.kafka_io import _GuardedCalls, _StuckCallError

    release = threading.Event()
    calls = _GuardedCalls()
    started = time.monotonic()
    with pytest.raises(_StuckCallError, match=r"send_offsets_to_transaction did not return within 0\.2 s"):
        calls.run(release.wait, 0.2, "send_offsets_to_transaction")
    assert time.monotonic() - started < 2.0
    # The stuck thread serves nothing more; a fresh runner does.
    done: list[int] = []
    _GuardedCalls().run(lambda: done.append(1), 2.0, "commit_transaction")
    assert done == [1]
    release.set()


def test_a_guarded_call_s_own_error_reaches_the_caller() -> None:
    from stream.kafka_io import _GuardedCalls

    def fail() -> None:
        raise ValueError("from librdkafka")

    with pytest.raises(ValueError, match="from librdkafka"):
        _GuardedCalls().run(fail, 2.0, "commit_transaction")


def test_a_partition_with_nothing_consumed_since_its_assignment_lags_behind_its_committed_offset() -> None:
    """A partition kept over a rebalance (or taken over finished) has no position until new data:
    its lag is high watermark minus the group's committed offset, not the partition's size."""
    from confluent_kafka import TopicPartition

    class Consumer:
        def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
            return [
                TopicPartition(tp.topic, tp.partition, -1001 if tp.partition == 0 else 40)
                for tp in partitions
            ]

        def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
            return (0, 5000) if tp.partition == 0 else (0, 52)

        def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
            assert [tp.partition for tp in partitions] == [0]  # asked only for the unread one
            return [TopicPartition(tp.topic, tp.partition, 4990) for tp in partitions]

        def close(self) -> None:
            return None

    broker = KafkaBroker(settings(kafka={"bootstrap_servers": "127.0.0.1:1"}, exactly_once=False))
    real = broker._consumer
    try:
        broker._consumer = Consumer()
        broker._assignment = [(broker._topic, 0), (broker._topic, 1)]
        assert broker.lag() == {
            0: 10,
            1: 12,
        }  # was {0: 5000, ...}: the whole partition, for as long as it stayed idle
    finally:
        broker._consumer = real
        broker.close()


# -- the consume path's errors, classified (issue 22 item 6) ----------------------------------
def kafka_exception(code: int, *, fatal: bool = False) -> Exception:
    from confluent_kafka import KafkaError, KafkaException

    return KafkaException(KafkaError(code, "test", fatal=fatal))


class UnstableConsumer:
    """Answers ``committed`` with UNSTABLE_OFFSET_COMMIT (a dead member's open transaction) and
    timeouts ``failures`` times, advancing the clock 10 s each, then with the offsets."""

    def __init__(self, failures: int, clock: ManualClock) -> None:
        self.failures = failures
        self.clock = clock
        self.assigned: list[object] = []

    def committed(self, partitions: list[object], timeout: float) -> list[object]:
        from confluent_kafka import KafkaError, TopicPartition

        if self.failures:
            self.failures -= 1
            self.clock.advance(10)
            code = KafkaError.UNSTABLE_OFFSET_COMMIT if self.failures % 2 else KafkaError._TIMED_OUT
            raise kafka_exception(code)
        return [TopicPartition("readings", 0, 42)]

    def assign(self, partitions: list[object]) -> None:
        self.assigned = partitions


class Listener:
    def __init__(self) -> None:
        self.got: list[object] = []

    def assigned(self, partitions: list[object]) -> set[object]:
        self.got = partitions
        return set()

    def revoked(self, partitions: object) -> None:
        return None

    def restore(self, stations: object, lines: object) -> None:
        return None


def broker_with(clock: ManualClock, outage_limit_s: float = 300) -> KafkaBroker:
    return KafkaBroker(
        settings(
            kafka={"bootstrap_servers": "127.0.0.1:1"},
            exactly_once=False,
            broker_outage_limit_s=outage_limit_s,
            topics={"readings": "readings"},
        ),
        clock=clock,
    )


def test_unstable_committed_offsets_are_waited_for_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    from confluent_kafka import TopicPartition

    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    clock = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
    broker = broker_with(clock)
    listener = Listener()
    broker._listener = listener  # type: ignore[assignment]
    consumer = UnstableConsumer(4, clock)  # 40 s of unstable offsets: past the old 30 s timeout
    try:
        broker._assign(consumer, [TopicPartition("readings", 0)])
        assert [(a.partition, a.committed) for a in listener.got] == [(0, 42)]  # type: ignore[attr-defined]
        assert [(tp.partition, tp.offset) for tp in consumer.assigned] == [(0, 42)]  # type: ignore[attr-defined]
    finally:
        broker.close()


def test_a_transient_error_past_the_deadline_ends_the_process_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from confluent_kafka import TopicPartition

    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    clock = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
    broker = broker_with(clock, outage_limit_s=25)
    broker._listener = Listener()  # type: ignore[assignment]
    try:
        with pytest.raises(BrokerError, match=r"reading the committed offsets still failing after 30 s"):
            broker._assign(UnstableConsumer(10, clock), [TopicPartition("readings", 0)])
    finally:
        broker.close()


def test_a_fatal_or_unknown_error_is_not_retried() -> None:
    from confluent_kafka import KafkaError

    from kafkakit.errors import is_transient

    assert is_transient(kafka_exception(KafkaError.UNSTABLE_OFFSET_COMMIT))
    assert is_transient(kafka_exception(KafkaError.NOT_COORDINATOR))
    assert is_transient(kafka_exception(KafkaError.NOT_LEADER_FOR_PARTITION))  # a topic just created
    assert not is_transient(kafka_exception(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    assert not is_transient(kafka_exception(KafkaError._TIMED_OUT, fatal=True))
    clock = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
    broker = broker_with(clock)
    calls = []

    def denied() -> None:
        calls.append(1)
        raise kafka_exception(KafkaError.TOPIC_AUTHORIZATION_FAILED)

    try:
        with pytest.raises(BrokerError, match="finding the rebuild offset failed"):
            broker._transient_retry("finding the rebuild offset", denied)
        assert calls == [1]
    finally:
        broker.close()


def test_a_kit_call_failing_for_a_transient_reason_is_retried_like_a_raw_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The state read goes through kafkakit, which raises BrokerError from the KafkaException: a broker
    # away while a new owner restores must still be waited out, not end the process at once.
    from confluent_kafka import KafkaError

    from kafkakit.errors import kafka_errors

    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    broker = broker_with(ManualClock(datetime(2025, 1, 1, tzinfo=UTC)))
    failures = [KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN]

    def state_read() -> str:
        if failures:
            with kafka_errors("cannot read the state topic"):
                raise kafka_exception(failures.pop(0))
        return "restored"

    def cut_short() -> str:
        raise BrokerError("could not read state [0] to its end in 30 s")

    try:
        assert broker._transient_retry("reading the state topic", state_read) == "restored"
        assert failures == []
        with pytest.raises(BrokerError, match="to its end in 30 s"):
            broker._transient_retry("reading the state topic", cut_short)
    finally:
        broker.close()


def test_a_fenced_static_member_stops_at_the_next_consume_instead_of_idling() -> None:
    from confluent_kafka import KafkaError

    broker = broker_with(ManualClock(datetime(2025, 1, 1, tzinfo=UTC)))
    try:
        fenced = KafkaError(
            KafkaError.FENCED_INSTANCE_ID,
            "Fatal consumer error: static consumer fenced by other consumer",
            fatal=True,
        )
        broker._on_error(fenced)
        with pytest.raises(BrokerError, match="static consumer fenced"):
            broker.consume(10, 0.01)
    finally:
        broker.close()


class FencedConsumer:
    """A consumer whose next poll hands over librdkafka's fatal error as it does for a consumer:
    a message with code _FATAL (whose error is not flagged fatal), never through error_cb."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def poll(self, timeout: float) -> object:
        from confluent_kafka import KafkaError

        error = KafkaError(
            KafkaError._FATAL,
            "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id",
        )

        class Message:
            def error(self) -> KafkaError:
                return error

        return Message()

    def consume(self, num_messages: int, timeout: float) -> list[object]:
        return []

    def unassign(self) -> None:
        return None

    def close(self) -> None:
        self.closed.set()


class Revocations:
    def __init__(self) -> None:
        self.calls: list[object] = []

    def assigned(self, partitions: object) -> set[int]:
        return set()

    def revoked(self, partitions: object) -> None:
        self.calls.append(partitions)


def test_a_fatal_consumer_error_message_stops_consume() -> None:
    """The fatal error of a fenced member comes as a _FATAL message; it ends the service with the
    reason (before, ``fatal()`` was False on it and the detector polled nothing, alive, silent)."""
    broker = broker_with(ManualClock(datetime(2025, 1, 1, tzinfo=UTC)))
    real = broker._consumer
    broker._consumer = FencedConsumer()
    try:
        with pytest.raises(BrokerError, match=r"Kafka fatal error.*Static consumer fenced"):
            broker.consume(10, 0.01)
    finally:
        broker._consumer = real
        broker.close()


def test_a_fence_after_our_own_session_timed_out_rejoins_with_a_new_consumer() -> None:
    """After librdkafka gave the session up (on_lost, a broker outage past session.timeout.ms), the
    fence is our own rejoin's (librdkafka#3437): a new consumer takes the membership back, once."""
    from confluent_kafka import TopicPartition

    broker = broker_with(ManualClock(datetime(2025, 1, 1, tzinfo=UTC)))
    listener = Revocations()
    broker._listener = listener  # type: ignore[assignment]
    broker._topics = ["readings"]
    real = broker._consumer
    real.close()
    fenced = FencedConsumer()
    broker._consumer = fenced
    broker._assignment = [("readings", 0)]
    try:
        broker._on_lost(fenced, [TopicPartition("readings", 0)])
        assert broker.consume(10, 0.01) == ()
        assert fenced.closed.wait(5), "the fenced consumer was not closed"
        assert broker._consumer is not fenced and broker._assignment == []
        assert listener.calls == [[("readings", 0)]]  # revoked once, rebuilt at the next assignment
        assert not broker._session_lost
        # A second fence with no session lost and no outage before it is another instance's: fatal.
        fresh, broker._consumer = broker._consumer, FencedConsumer()
        fresh.close()
        broker._down_since = None  # the unit-test bootstrap (port 1) reports itself down meanwhile
        with pytest.raises(BrokerError, match="Kafka fatal error"):
            broker.consume(10, 0.01)
    finally:
        broker.close()


@pytest.mark.parametrize(("ended_s_ago", "rejoins"), [(10.0, True), (60.0, False)])
def test_a_fence_soon_after_an_outage_is_our_own_and_a_late_one_is_not(
    ended_s_ago: float, rejoins: bool
) -> None:
    """on_lost does not always come before the fence: an outage that ended within the session
    timeout (45 s) also makes it ours; one that ended longer ago leaves it fatal."""
    clock = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
    broker = broker_with(clock)
    broker._topics = ["readings"]
    broker._consumer.close()
    broker._consumer = FencedConsumer()
    try:
        broker._down_since = 0.0
        clock.advance(100.0)
        broker._mark_up()
        clock.advance(ended_s_ago)
        if rejoins:
            assert broker.consume(10, 0.01) == ()
            assert not isinstance(broker._consumer, FencedConsumer)
        else:
            with pytest.raises(BrokerError, match="Kafka fatal error"):
                broker.consume(10, 0.01)
    finally:
        broker.close()


class LostSessionConsumer(FencedConsumer):
    """A consumer whose session librdkafka gave up while the service sat in a transaction: the
    revocation waits in its queue for the next poll, and ``committed`` would time out until then."""

    def __init__(self, broker: KafkaBroker) -> None:
        super().__init__()
        self.broker = broker
        self.asked_committed = False

    def poll(self, timeout: float) -> object:
        from confluent_kafka import TopicPartition

        self.broker._on_lost(self, [TopicPartition("readings", 0)])
        return None

    def committed(self, partitions: object, timeout: float) -> object:
        self.asked_committed = True
        raise AssertionError("committed asked before the lost session's revocation was served")


def test_a_rewind_serves_a_waiting_revocation_before_asking_for_committed_offsets() -> None:
    broker = broker_with(ManualClock(datetime(2025, 1, 1, tzinfo=UTC)))
    listener = Revocations()
    broker._listener = listener  # type: ignore[assignment]
    broker._consumer.close()
    lost = LostSessionConsumer(broker)
    broker._consumer = lost
    broker._assignment = [("readings", 0)]
    try:
        broker.rewind()
        assert not lost.asked_committed
        assert broker._assignment == [] and broker._session_lost
        assert listener.calls == [[("readings", 0)]]
    finally:
        broker.close()
