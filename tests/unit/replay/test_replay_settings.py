"""Replay's own settings read the same names as the detector's: one environment or file configures
both, a bad Kafka setting stops replay at start naming it, and a secret never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.errors import ConfigError
from kafkakit.config import kafka_client_config
from replay.settings import load_replay_settings
from stream.settings import load_settings


def test_the_defaults_are_the_detector_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENTINELA_KAFKA_PORT", "29092")
    settings = load_replay_settings()
    assert settings.kafka == load_settings().kafka
    assert settings.kafka.bootstrap_servers == "localhost:29092"
    assert settings.topics.readings == "centinela.readings"


def test_the_environment_is_read_as_the_detector_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "shared:9092")
    monkeypatch.setenv("CENTINELA_TOPICS__READINGS", "plant.readings")
    monkeypatch.setenv("CENTINELA_TOPICS__ALERTS", "plant.alerts")  # the detector's: no concern of replay
    monkeypatch.setenv("CENTINELA_GROUP_ID", "plant-detector")
    monkeypatch.setenv("CENTINELA_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    settings = load_replay_settings()
    assert (settings.kafka.bootstrap_servers, settings.topics.readings) == ("shared:9092", "plant.readings")
    assert settings.kafka == load_settings().kafka
    monkeypatch.setenv("CENTINELA_KAFKA__BOOTSTRAP_SERVERS", "mine:9092")  # stronger than the shared one
    assert load_replay_settings().kafka.bootstrap_servers == "mine:9092"


def test_the_detector_s_config_file_serves_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    config = tmp_path / "detector.toml"
    config.write_text(
        'group_id = "from-file"\nmax_batch = 7\n[kafka]\nbootstrap_servers = "file:9092"\n'
        '[topics]\nreadings = "file.readings"\nalerts = "file.alerts"\n'
    )
    settings = load_replay_settings(config)
    assert (settings.kafka.bootstrap_servers, settings.topics.readings) == ("file:9092", "file.readings")
    with pytest.raises(ConfigError, match="no such file"):
        load_replay_settings(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("CENTINELA_KAFKA__BOOTSTRAP_SERVERS", "not a host", r"kafka\.bootstrap_servers \(CENTINELA_KAFKA__"),
        ("CENTINELA_KAFKA__SECURITY_PROTOCOL", "TLS", r"kafka\.security_protocol"),
        ("CENTINELA_KAFKA__SASL_PASSWORD_FILES", "/x", r"kafka\.sasl_password_files"),  # a typo
        ("CENTINELA_TOPICS__READINGS", "", r"topics\.readings \(CENTINELA_TOPICS__READINGS\)"),
    ],
)
def test_a_bad_setting_stops_replay_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=named):
        load_replay_settings()


def test_a_secret_file_is_read_for_the_client_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-value\n")
    monkeypatch.setenv("CENTINELA_KAFKA__SASL_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("CENTINELA_KAFKA__SSL_KEY_PASSWORD", "key-pass")
    settings = load_replay_settings()
    assert "s3cret" not in repr(settings) and "key-pass" not in repr(settings)
    config = kafka_client_config(settings.kafka)
    assert (config["sasl.password"], config["ssl.key.password"]) == ("s3cret-value", "key-pass")
