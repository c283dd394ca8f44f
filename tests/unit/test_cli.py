from __future__ import annotations

import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from centinela import __version__
from centinela.cli import app
from detector.errors import ConfigError


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"centinela {__version__}"


@pytest.mark.slow
def test_help_lists_subcommands_without_importing_tensorflow() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from centinela.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "assert 'tensorflow' not in sys.modules; print(r.output)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "bench" in out.stdout
    assert "evaluate" in out.stdout


def test_a_command_whose_package_is_absent_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from centinela import cli

    assert cli._installed("stream.cli")
    assert not cli._installed("no_such_package.cli")  # find_spec alone raises for a missing parent
    assert not cli._installed("stream.no_such_module")


def test_replay_of_a_missing_file_names_the_file_before_any_broker_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens: asking would take 15 s
    started = time.monotonic()
    result = CliRunner().invoke(app, ["replay", "/nonexistent/readings.csv"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == "/nonexistent/readings.csv: no such file"
    assert time.monotonic() - started < 10


def test_a_bad_log_level_stops_every_command_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENTINELA_LOG_LEVEL", "chatty")
    result = CliRunner().invoke(app, ["topics", "--help"])
    assert isinstance(result.exception, ConfigError)
    assert "CENTINELA_LOG_LEVEL" in str(result.exception)


def test_help_screens_show_no_type_beside_on_off_flags() -> None:
    for command in (["--help"], ["detect", "--help"], ["alerts", "--help"], ["replay", "--help"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output
    assert "<path>" in CliRunner().invoke(app, ["detect", "--help"]).output  # options with values keep theirs
