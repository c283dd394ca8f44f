from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from centinela.cli import app


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CENTINELA_KAFKA_HOME", str(tmp_path))
    return tmp_path


def test_status_without_a_broker_says_not_running(empty_home: Path) -> None:
    result = CliRunner().invoke(app, ["broker", "status"])
    assert result.exit_code == 0
    assert result.output.strip() == "not running"


def test_stop_without_a_broker_is_not_an_error(empty_home: Path) -> None:
    result = CliRunner().invoke(app, ["broker", "stop"])
    assert result.exit_code == 0
    assert result.output.strip() == "not running"


def test_broker_help_lists_its_commands() -> None:
    result = CliRunner().invoke(app, ["broker", "--help"])
    assert result.exit_code == 0
    for command in ("fetch", "start", "stop", "status"):
        assert command in result.output
