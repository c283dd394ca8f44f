"""Where the tests' broker comes from, without any broker: the order and the error messages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from centinela import local_broker
from detector.errors import BrokerError, ConfigError
from tests.integration import kafka_helpers


def test_a_wrong_address_is_reported_and_nothing_else_is_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(bootstrap: str, timeout_s: float) -> local_broker.ClusterInfo:
        raise BrokerError(f"Kafka at {bootstrap} cannot be reached")

    monkeypatch.setattr(local_broker, "probe_cluster", refuse)
    monkeypatch.setattr(local_broker, "acquire", lambda *a, **k: pytest.fail("started the local broker"))
    monkeypatch.setattr(kafka_helpers, "_testcontainers_kafka", lambda e: pytest.fail("tried Docker"))

    with (
        pytest.raises(BrokerError, match=r"127\.0\.0\.1:1"),
        kafka_helpers.provide_broker({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}),
    ):
        pass


def test_the_environment_cluster_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        local_broker, "probe_cluster", lambda b, timeout_s: local_broker.ClusterInfo(b, 3, "abc", 1)
    )
    monkeypatch.setattr(local_broker, "acquire", lambda *a, **k: pytest.fail("started the local broker"))

    with kafka_helpers.provide_broker({"KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092"}) as provided:
        assert provided.bootstrap == "kafka-1:9092,kafka-2:9092"
        assert provided.source == "environment"
        assert not provided.started_here
        assert "3 broker(s)" in provided.describe()


def test_without_java_or_maven_and_without_docker_the_error_names_all_three(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_java(*args: object, **kwargs: object) -> local_broker.Lease:
        raise ConfigError("Java 17 or newer is needed")

    class NoDocker:
        def ping(self) -> bool:
            raise ConnectionError("no docker socket")

    import docker

    monkeypatch.setattr(local_broker, "acquire", no_java)
    monkeypatch.setattr(docker, "from_env", NoDocker)

    with pytest.raises(BrokerError) as raised, kafka_helpers.provide_broker({}):
        pass
    message = str(raised.value)
    assert "KAFKA_BOOTSTRAP_SERVERS is unset" in message
    assert "Java 17" in message
    assert "no docker socket" in message


def test_testcontainers_is_the_fallback_when_the_local_broker_cannot_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @contextlib.contextmanager
    def fake_container(error: Exception) -> Iterator[local_broker.ProvidedBroker]:
        yield local_broker.ProvidedBroker("localhost:32768", "testcontainers", "cp-kafka", started_here=True)

    def no_maven(*args: object, **kwargs: object) -> local_broker.Lease:
        raise ConfigError("no mvn")

    monkeypatch.setattr(local_broker, "acquire", no_maven)
    monkeypatch.setattr(kafka_helpers, "_testcontainers_kafka", fake_container)

    with kafka_helpers.provide_broker({}) as provided:
        assert provided.source == "testcontainers"
        assert provided.bootstrap == "localhost:32768"
