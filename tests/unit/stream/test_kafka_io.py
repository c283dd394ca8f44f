"""The Kafka adapter without a broker: client construction and error translation."""

from __future__ import annotations

import pytest

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


def test_an_unreachable_cluster_fails_start_with_a_broker_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream import kafka_io

    monkeypatch.setattr(kafka_io, "_TIMEOUT_S", 1.0)
    broker = KafkaBroker(settings(kafka={"bootstrap_servers": "127.0.0.1:1"}, transaction_timeout_s=1))

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
