"""``kafkakit.read`` without a broker: ``committed_to_end`` is a polling predicate (a transient Kafka
error means "not yet", never a crash); failures are ``BrokerError``. The reading itself runs against
the real broker in tests/contract and tests/integration."""

from __future__ import annotations

from typing import Any

import pytest

from detector.errors import BrokerError
from kafkakit import read
from tests.unit.stream.test_kafka_io import kafka_exception


class _Metadata:
    def __init__(self) -> None:
        self.topics = {"t": type("T", (), {"partitions": {0: None}})()}


def _consumer_failing_with(code: int) -> type:
    class Consumer:
        def __init__(self, config: dict[str, Any]) -> None:
            self.config = config

        def list_topics(self, topic: str, timeout: float) -> _Metadata:
            return _Metadata()

        def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
            raise kafka_exception(code)

        def close(self) -> None:
            return None

    return Consumer


def test_a_coordinator_moving_answers_not_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    import confluent_kafka
    from confluent_kafka import KafkaError

    monkeypatch.setattr(confluent_kafka, "Consumer", _consumer_failing_with(KafkaError.NOT_COORDINATOR))
    assert read.committed_to_end("127.0.0.1:1", "g", "t") is False


def test_a_real_error_still_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import confluent_kafka
    from confluent_kafka import KafkaError

    monkeypatch.setattr(
        confluent_kafka, "Consumer", _consumer_failing_with(KafkaError.GROUP_AUTHORIZATION_FAILED)
    )
    with pytest.raises(BrokerError, match="cannot read the progress of group g on t") as raised:
        read.committed_to_end("127.0.0.1:1", "g", "t")
    assert raised.value.__cause__ is not None  # raised ``from`` the Kafka error


def test_reading_a_missing_topic_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import confluent_kafka

    class Consumer:
        def __init__(self, config: dict[str, Any]) -> None:
            assert config["isolation.level"] == "read_committed"
            assert config["enable.auto.commit"] is False

        def list_topics(self, topic: str, timeout: float) -> Any:
            return type("M", (), {"topics": {}})()

        def close(self) -> None:
            return None

    monkeypatch.setattr(confluent_kafka, "Consumer", Consumer)
    with pytest.raises(BrokerError, match="topic absent does not exist"):
        read.read_to_end("127.0.0.1:1", "absent")
