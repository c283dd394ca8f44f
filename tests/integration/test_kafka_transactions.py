"""The local broker is set up for transactions: committed records are read, aborted ones are not."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from tests.integration.kafka_helpers import TopicFactory

pytestmark = pytest.mark.integration


def test_read_committed_sees_committed_and_not_aborted_transactions(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str
) -> None:
    topic = fresh_topic(partitions=2)
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"test-tx-{uuid.uuid4().hex[:12]}"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"EB-1", value=b"aborted")
    producer.abort_transaction(30)
    producer.begin_transaction()
    for n in range(3):
        producer.produce(topic, key=f"EB-{n}".encode(), value=b"committed")
    producer.commit_transaction(30)

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": fresh_group,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "session.timeout.ms": 6000,
        }
    )
    values: list[bytes | None] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 20
        while len(values) < 3 and time.monotonic() < deadline:
            values.extend(m.value() for m in consumer.consume(10, timeout=0.5) if m.error() is None)
        values.extend(m.value() for m in consumer.consume(10, timeout=0.5) if m.error() is None)
    finally:
        consumer.close()

    assert values == [b"committed"] * 3
