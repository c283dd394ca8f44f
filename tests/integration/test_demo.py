"""The README's first command: ``centinela demo`` end to end on the real broker, at a small size."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.slow
def test_the_demo_runs_end_to_end(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    command = [sys.executable, "-m", "centinela", "demo", "--out", str(tmp_path), "--stations", "3"]
    command += ["--days", "6", "--epochs", "2", "--metrics-port", str(_free_port())]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "True events in the replayed period" in result.stdout
    # With a line, the station tables say they judge the autoencoder alone (the line's catches follow).
    assert "per-station autoencoder alone: caught" in result.stdout
    assert "centinela_windows_scored_total" in result.stdout
    # The line: the bundle carries the simulated line's topology, and segment incidents are shown
    # beside the true thefts of their segment.
    manifest = json.loads((tmp_path / "train" / "bundle" / "manifest.json").read_text())
    assert manifest["line"] is not None
    assert "Segment incidents raised by the detector" in result.stdout
    assert "True thefts and leaks in the replayed period, by segment" in result.stdout
    segments = json.loads((tmp_path / "segments.json").read_text())
    assert segments["events"], "the busy demo line has taps in its replayed days"
    assert all(">" in event["segment"] for event in segments["events"])
    card = json.loads((tmp_path / "scorecard.json").read_text())
    assert card["expected"] >= 1  # the busy demo line has taps in its replayed days
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert alerts, "the detector published no alert"
    assert {alert["model_version"] for alert in alerts} == {
        json.loads((tmp_path / "train" / "bundle" / "manifest.json").read_text())["model_version"]
    }


def test_the_demo_fails_fast_on_an_unreachable_cluster(tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "centinela", "demo", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "127.0.0.1:1" in result.stderr
    assert time.monotonic() - started < 30
