"""``committed_to_end`` is a polling predicate: a transient Kafka error means "not yet", never a crash."""

from __future__ import annotations

from typing import Any

import pytest

from stream import group_progress
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
    assert group_progress.committed_to_end("127.0.0.1:1", "g", "t") is False


def test_a_real_error_still_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import confluent_kafka
    from confluent_kafka import KafkaError, KafkaException

    monkeypatch.setattr(
        confluent_kafka, "Consumer", _consumer_failing_with(KafkaError.GROUP_AUTHORIZATION_FAILED)
    )
    with pytest.raises(KafkaException):
        group_progress.committed_to_end("127.0.0.1:1", "g", "t")
