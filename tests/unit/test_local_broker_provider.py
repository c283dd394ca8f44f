"""Where the tests' broker comes from, without any broker: the order and the error messages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from detector.errors import BrokerError, ConfigError
from devtools import broker as local_broker
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


def test_a_default_port_held_by_another_process_moves_the_local_broker_to_free_ports() -> None:
    taken = {9092, 19093}  # someone's Kafka on 9092; the first fallback's controller port is taken too
    moved = local_broker.free_ports(local_broker.BrokerConfig(), taken.__contains__)
    assert (moved.port, moved.effective_controller_port) == (19102, 19103)
    untouched = local_broker.BrokerConfig(port=29092)
    assert local_broker.free_ports(untouched, lambda port: False) is untouched


def test_no_free_fallback_names_the_setting_to_use() -> None:
    with pytest.raises(BrokerError, match="CENTINELA_KAFKA_PORT"):
        local_broker.free_ports(local_broker.BrokerConfig(), lambda port: True)


def test_a_chosen_port_is_never_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen: list[local_broker.BrokerConfig] = []

    def record(home: local_broker.BrokerHome, config: local_broker.BrokerConfig) -> None:
        chosen.append(config)
        raise BrokerError("stop here")

    monkeypatch.setattr(local_broker, "_port_in_use", lambda host, port: True)
    monkeypatch.setattr(local_broker, "status", lambda home: local_broker.BrokerStatus(running=False))
    monkeypatch.setattr(local_broker, "acquire", record)
    for environ, port in (({"CENTINELA_KAFKA_PORT": "29092"}, 29092), ({}, None)):
        with pytest.raises(BrokerError), local_broker.provide(environ):
            pass
        if port is not None:
            assert chosen[-1].port == port
    # Every fallback busy too: refused before anything starts, naming the setting.
    assert len(chosen) == 1
