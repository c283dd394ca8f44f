from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from detector.errors import ConfigError
from kafkakit.config import kafka_client_config
from stream.settings import Settings, describe, load_settings


def test_defaults_are_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CENTINELA_KAFKA_PORT", raising=False)
    settings = load_settings(instance_id="a")
    assert settings.kafka.bootstrap_servers == "localhost:9092"
    assert (settings.topics.readings, settings.topics.alerts) == ("centinela.readings", "centinela.alerts")
    assert (settings.topics.dlq, settings.topics.scores) == ("centinela.dlq", "centinela.scores")
    assert settings.group_id == "centinela-detector"
    assert (settings.metrics_host, settings.metrics_port) == ("0.0.0.0", 9108)
    assert settings.exactly_once
    assert settings.transactional_id == "centinela-detector.a"


def test_the_default_broker_is_the_local_one_on_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENTINELA_KAFKA_PORT", "29092")  # what `centinela broker start` listens on
    assert load_settings().kafka.bootstrap_servers == "localhost:29092"


@pytest.mark.parametrize("bootstrap", ["not a host", "localhost:abc", "kafka:0", "kafka", ":9092", "a:1,b"])
def test_a_bootstrap_that_is_not_host_port_is_refused_by_name(bootstrap: str) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_servers.*is not host:port"):
        load_settings(kafka={"bootstrap_servers": bootstrap})


def test_environment_nested_and_the_kafka_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "shared:9092")
    monkeypatch.setenv("CENTINELA_TOPICS__SCORES", "")
    monkeypatch.setenv("CENTINELA_INCIDENT__K", "2")
    monkeypatch.setenv("CENTINELA_INCIDENT__N", "3")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "shared:9092"
    assert settings.topics.scores == ""
    assert settings.incident.policy().k == 2
    monkeypatch.setenv("CENTINELA_KAFKA__BOOTSTRAP_SERVERS", "mine:9092")
    assert load_settings().kafka.bootstrap_servers == "mine:9092"


def test_toml_file_under_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "detector.toml"
    config.write_text('group_id = "from-file"\nmax_batch = 7\n[kafka]\nbootstrap_servers = "file:9092"\n')
    monkeypatch.setenv("CENTINELA_MAX_BATCH", "9")
    settings = load_settings(config)
    assert (settings.group_id, settings.max_batch, settings.kafka.bootstrap_servers) == (
        "from-file",
        9,
        "file:9092",
    )
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:9092")
    assert load_settings(config).kafka.bootstrap_servers == "env:9092"
    assert load_settings().group_id == "centinela-detector"  # the file is read only when given


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("CENTINELA_METRICS_PORT", "not-a-port", "metrics_port (CENTINELA_METRICS_PORT)"),
        ("CENTINELA_METRICS_PORT", "70000", "metrics_port"),
        (
            "CENTINELA_KAFKA__SECURITY_PROTOCOL",
            "CARRIER_PIGEON",
            "kafka.security_protocol (CENTINELA_KAFKA__SECURITY_PROTOCOL)",
        ),
        ("CENTINELA_IDLE_TIMEOUT_S", "-1", "idle_timeout_s"),
        ("CENTINELA_GROUP_ID", "has space", "group_id"),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load_settings()


def test_missing_or_malformed_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_settings(broken)


def test_secrets_reach_the_client_but_never_a_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENTINELA_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CENTINELA_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CENTINELA_KAFKA__SASL_USERNAME", "centinela")
    monkeypatch.setenv("CENTINELA_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("CENTINELA_KAFKA__SSL_CA_LOCATION", "/etc/ca.pem")
    monkeypatch.setenv("CENTINELA_KAFKA__EXTRA", '{"socket.keepalive.enable": "true"}')
    settings = load_settings()
    config = kafka_client_config(settings.kafka)
    assert config["sasl.password"] == "hunter2"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["ssl.ca.location"] == "/etc/ca.pem"
    assert config["socket.keepalive.enable"] == "true"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(describe(settings))


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.max_batch = 3  # type: ignore[misc]
    assert isinstance(settings, Settings)
