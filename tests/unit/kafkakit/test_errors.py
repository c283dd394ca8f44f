"""One mapping of Kafka errors: ``kafka_errors`` raises ``BrokerError`` from the original, and
``is_transient`` tells a retry from a failure."""

from __future__ import annotations

import pytest

from detector.errors import BrokerError
from kafkakit.errors import is_transient, kafka_errors
from tests.unit.stream.test_kafka_io import kafka_exception


def test_a_kafka_exception_becomes_a_broker_error_naming_what_failed() -> None:
    from confluent_kafka import KafkaError

    original = kafka_exception(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    expected = r"^produce to t failed: .*TOPIC_AUTHORIZATION_FAILED"
    with pytest.raises(BrokerError, match=expected) as raised, kafka_errors("produce to t failed"):
        raise original
    assert raised.value.__cause__ is original


def test_other_exceptions_pass_unchanged() -> None:
    with pytest.raises(BufferError), kafka_errors("produce"):
        raise BufferError("queue full")  # the caller's to serve, not a broker failure
    with pytest.raises(BrokerError, match=r"^already ours$"), kafka_errors("produce"):
        raise BrokerError("already ours")


def test_transient_errors_are_told_from_fatal_ones() -> None:
    from confluent_kafka import KafkaError

    assert is_transient(kafka_exception(KafkaError.UNSTABLE_OFFSET_COMMIT))
    assert is_transient(kafka_exception(KafkaError.NOT_COORDINATOR).args[0])  # a KafkaError itself
    assert not is_transient(kafka_exception(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    assert not is_transient(kafka_exception(KafkaError._TIMED_OUT, fatal=True))
    assert not is_transient(ValueError("not Kafka's"))
