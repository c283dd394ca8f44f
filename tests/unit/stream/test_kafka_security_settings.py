"""Kafka secrets from files, kept out of ``kafka.extra`` and the log line; the start-up check's timeout."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from detector.errors import BrokerError, ConfigError
from kafkakit.check import check_connection
from kafkakit.config import kafka_client_config
from stream.settings import describe, load_settings


def test_passwords_are_read_from_files_and_never_described(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sasl").write_text("s3cret-sasl\n")
    (tmp_path / "key").write_text("s3cret-key\n")
    monkeypatch.setenv("CENTINELA_KAFKA__SASL_PASSWORD_FILE", str(tmp_path / "sasl"))
    monkeypatch.setenv("CENTINELA_KAFKA__SSL_KEY_PASSWORD_FILE", str(tmp_path / "key"))
    settings = load_settings()
    config = kafka_client_config(settings.kafka)
    assert config["sasl.password"] == "s3cret-sasl"
    assert config["ssl.key.password"] == "s3cret-key"
    assert "s3cret" not in str(describe(settings)) + repr(settings)


def test_a_password_and_its_file_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sasl_password or sasl_password_file"):
        load_settings(kafka={"sasl_password": "x", "sasl_password_file": tmp_path / "f"})


def test_secrets_in_extra_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"not in kafka\.extra"):
        load_settings(kafka={"extra": {"sasl.password": "x"}})


def test_a_missing_password_file_is_a_config_error(tmp_path: Path) -> None:
    settings = load_settings(kafka={"sasl_password_file": tmp_path / "missing"})
    with pytest.raises(ConfigError, match="cannot read the secret file"):
        kafka_client_config(settings.kafka)


@pytest.mark.slow  # waits out its 1 s timeout
def test_the_start_up_check_gives_up_after_its_timeout() -> None:
    began = time.monotonic()
    with pytest.raises(BrokerError, match=r"cannot connect to Kafka at 127\.0\.0\.1:1"):
        check_connection({"bootstrap.servers": "127.0.0.1:1"}, timeout_s=1.0)
    assert time.monotonic() - began < 5


@pytest.mark.slow  # waits out its timeout
def test_the_detector_s_check_waits_for_a_cluster_that_is_only_down(caplog: pytest.LogCaptureFixture) -> None:
    assert check_connection({"bootstrap.servers": "127.0.0.1:1"}, timeout_s=0.5, give_up=False) == 0
    assert "starting anyway" in caplog.text
