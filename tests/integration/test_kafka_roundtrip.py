"""The wire is real: keyed messages through a 6-partition topic and a consumer group, and kcat."""

from __future__ import annotations

import collections
import time
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer

from detector.readings import Reading
from tests.integration.kafka_helpers import Kcat, TopicFactory

pytestmark = pytest.mark.integration

STATIONS = 60
MESSAGES_PER_STATION = 10


def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for key, value in messages:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(20) == 0, "messages still queued after 20 s"
    assert failures == []


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )


def test_keyed_messages_arrive_exactly_once_across_a_consumer_group(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str
) -> None:
    topic = fresh_topic(partitions=6)
    consumers = [_consumer(kafka_bootstrap, fresh_group) for _ in range(2)]
    try:
        for consumer in consumers:
            consumer.subscribe([topic])
        # Settle the group before producing, so no rebalance can hand a partition over mid-read.
        deadline = time.monotonic() + 30
        while sum(len(c.assignment()) for c in consumers) != 6 or not all(c.assignment() for c in consumers):
            assert time.monotonic() < deadline, "the consumer group did not settle on 6 partitions"
            for consumer in consumers:
                assert consumer.poll(0.1) is None
        sent = [
            (f"station-{station:03d}".encode(), f"{station}:{seq}".encode())
            for seq in range(MESSAGES_PER_STATION)
            for station in range(STATIONS)
        ]
        _produce(kafka_bootstrap, topic, sent)

        received: collections.Counter[tuple[bytes, bytes]] = collections.Counter()
        partitions_of_key: dict[bytes, set[int]] = collections.defaultdict(set)
        per_consumer = [0, 0]
        deadline = time.monotonic() + 30
        while sum(received.values()) < len(sent) and time.monotonic() < deadline:
            for index, consumer in enumerate(consumers):
                batch = consumer.consume(num_messages=500, timeout=0.2)
                for message in batch:
                    assert message.error() is None, message.error()
                    key, value = message.key(), message.value()
                    assert key is not None and value is not None
                    received[(key, value)] += 1
                    partitions_of_key[key].add(message.partition())
                    per_consumer[index] += 1
                if batch:
                    consumer.commit(asynchronous=False)
        # A short extra read: a duplicate would show up here.
        for consumer in consumers:
            assert consumer.consume(num_messages=10, timeout=0.5) == []
    finally:
        for consumer in consumers:
            consumer.close()

    assert set(received) == set(sent)
    assert all(count == 1 for count in received.values()), received.most_common(3)
    assert all(len(partitions) == 1 for partitions in partitions_of_key.values())
    assert len({p for partitions in partitions_of_key.values() for p in partitions}) == 6
    assert all(count > 0 for count in per_consumer), per_consumer


def test_kcat_reads_the_readings_the_project_wrote(
    kafka_bootstrap: str, fresh_topic: TopicFactory, kcat: Kcat
) -> None:
    topic = fresh_topic(partitions=3)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    readings = [
        Reading(
            station_id=f"EB-{station}",
            ts=start + timedelta(minutes=minute),
            values={
                "flow": 100.0 + minute,
                "pressure": 50.5,
                "pump_rpm": 1800.0,
                "tank_level": 7.25,
                "power": 310.0,
            },
        )
        for station in range(4)
        for minute in range(5)
    ]
    sent = [(r.station_id.encode(), r.to_json_bytes()) for r in readings]
    _produce(kafka_bootstrap, topic, sent)

    lines = kcat.consume(topic, fmt="%k\\t%s\\n")

    assert sorted(tuple(line.encode().split(b"\t", 1)) for line in lines) == sorted(sent)


def test_what_kcat_writes_the_project_reads(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, kcat: Kcat
) -> None:
    topic = fresh_topic(partitions=1)
    kcat.run(["-P", "-t", topic, "-K", ":"], input=b"EB-1:first\nEB-2:second\n")

    consumer = _consumer(kafka_bootstrap, fresh_group)
    try:
        consumer.subscribe([topic])
        got: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 20
        while len(got) < 2 and time.monotonic() < deadline:
            got.extend((m.key(), m.value()) for m in consumer.consume(10, timeout=0.5) if m.error() is None)
    finally:
        consumer.close()

    assert got == [(b"EB-1", b"first"), (b"EB-2", b"second")]


def test_kcat_with_the_wheels_librdkafka_reads_the_broker_too(
    kafka_bootstrap: str, fresh_topic: TopicFactory
) -> None:
    # The fallback the kcat helper takes when Debian's librdkafka cannot talk to the broker.
    topic = fresh_topic(partitions=1)
    _produce(kafka_bootstrap, topic, [(b"EB-7", b"via the bundled librdkafka")])
    runner = Kcat(kafka_bootstrap)
    try:
        runner.use_bundled_librdkafka()
        import confluent_kafka

        assert runner.librdkafka_version == confluent_kafka.libversion()[0]
        assert runner.consume(topic) == ["EB-7\tvia the bundled librdkafka"]
    finally:
        runner.close()
