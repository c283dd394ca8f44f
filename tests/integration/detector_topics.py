"""The detector's topics as a test sees them: create them, write readings, read committed alerts,
ask how far a consumer group has committed, compare alert sets."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from detector.errors import BrokerError
from kafkakit.read import committed_to_end as committed_all
from tests.integration.kafka_helpers import unique_name


class Topics:
    """A fresh readings, alerts, dead-letter and scores topic for one detector run."""

    def __init__(self, fresh_topic: Callable[..., str], partitions: int = 2, *, line: bool = False) -> None:
        self.readings = fresh_topic(partitions, prefix="readings")
        self.alerts = fresh_topic(1, prefix="alerts")
        self.dlq = fresh_topic(1, prefix="dlq")
        self.scores = fresh_topic(1, prefix="scores")
        # With a line bundle: the internal line topic and the state topic, as many partitions as readings.
        self.line = fresh_topic(partitions, prefix="line") if line else ""
        self.state = fresh_topic(partitions, prefix="state") if line else ""

    def env(self) -> dict[str, str]:
        """The same topics as ``CENTINELA_TOPICS__*`` settings, for a detector subprocess."""
        env = {
            "CENTINELA_TOPICS__READINGS": self.readings,
            "CENTINELA_TOPICS__ALERTS": self.alerts,
            "CENTINELA_TOPICS__DLQ": self.dlq,
            "CENTINELA_TOPICS__SCORES": self.scores,
        }
        if self.line:
            env |= {"CENTINELA_TOPICS__LINE": self.line, "CENTINELA_TOPICS__STATE": self.state}
        return env

    def settled(self, bootstrap: str, group: str) -> bool:
        """Whether ``group`` has committed the readings (and the line topic) to their ends."""
        return settled(bootstrap, group, self.readings) and (
            not self.line or transactional_settled(bootstrap, group, self.line)
        )


def produce(
    bootstrap: str,
    topic: str,
    messages: list[tuple[bytes | None, bytes | None]],
    timestamps_ms: list[int] | None = None,
) -> None:
    """Write ``(key, value)`` messages in order (stamped now unless ``timestamps_ms`` says otherwise)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for index, (key, value) in enumerate(messages):
        stamp = 0 if timestamps_ms is None else timestamps_ms[index]  # 0: now
        while True:
            try:
                producer.produce(topic, value=value, key=key, timestamp=stamp)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(30) == 0


def read_topic(bootstrap: str, topic: str, *, settle_s: float = 1.0, timeout_s: float = 20.0) -> list[Any]:
    """Every committed message of ``topic`` (read_committed), once nothing new arrived for ``settle_s``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("reader"),
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])  # 0 = from the beginning
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        # Before the first message, allow the fetcher time to start (an empty topic costs 3 s).
        while time.monotonic() < deadline and time.monotonic() - quiet_since < (settle_s if out else 3.0):
            batch = consumer.consume(1000, 0.2)
            batch = [m for m in batch if m.error() is None]
            if batch:
                out.extend(batch)
                quiet_since = time.monotonic()
        return out
    finally:
        consumer.close()


def settled(bootstrap: str, group: str, topic: str) -> bool:
    """``committed_all``, reading any Kafka error while the group rebalances as "not yet"."""
    try:
        return committed_all(bootstrap, group, topic)
    except BrokerError:
        return False


def transactional_settled(bootstrap: str, group: str, topic: str) -> bool:
    """``settled`` for a topic written in transactions (the line topic: see ``committed_to_end``)."""
    try:
        return committed_all(bootstrap, group, topic, transactional=True)
    except BrokerError:
        return False


def committed_alerts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every committed alert (read_committed), parsed."""
    return [orjson.loads(m.value()) for m in read_topic(bootstrap, topic)]


def comparable(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert's payload without the fields that depend on wall time."""
    return {k: v for k, v in alert.items() if k != "emitted_at"}


def assert_same_alerts(alerts: list[dict[str, Any]], reference: dict[str, dict[str, Any]]) -> None:
    """``alerts`` are exactly ``reference`` (by ``alert_id``, see :func:`comparable`): no duplicate,
    nothing missing, nothing extra, equal payloads."""
    ids = [a["alert_id"] for a in alerts]
    assert len(set(ids)) == len(ids), "duplicate alerts"
    missing, extra = set(reference) - set(ids), set(ids) - set(reference)
    assert not missing and not extra, f"{len(missing)} alerts missing, {len(extra)} extra"
    for alert in alerts:
        assert comparable(alert) == reference[alert["alert_id"]]
