"""Run the detector for a test: ``centinela detect`` as a subprocess with settings in its
environment (crash tests: it can be SIGKILLed), or the settings for one run in a thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from stream.settings import Settings
from tests.integration.detector_topics import Topics
from tests.integration.kafka_helpers import unique_name
from tests.integration.local_ports import free_port

ROOT = Path(__file__).resolve().parents[2]
READ = "centinela_readings_total"  # readings a detector has consumed, by outcome


def start_detector(
    bootstrap: str,
    topics: Topics,
    group: str,
    bundle: Path,
    log_path: Path,
    *,
    instance_id: str | None = None,
    **extra: str,
) -> subprocess.Popen[bytes]:
    """One detector process; ``instance_id`` (default: a new one) is its static member and
    transactional id, ``extra`` are CENTINELA_* settings (name without the prefix)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CENTINELA_")},
        **topics.env(),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CENTINELA_GROUP_ID": group,
        "CENTINELA_INSTANCE_ID": instance_id or unique_name("eo"),
        "CENTINELA_BUNDLE_PATH": str(bundle),
        "CENTINELA_METRICS_HOST": "127.0.0.1",
        "CENTINELA_METRICS_PORT": str(free_port()),
        "CENTINELA_WATCH_BUNDLE": "false",
        "CENTINELA_IDLE_TIMEOUT_S": "1000000",  # no wall-clock data_gap alerts in these tests
        "CENTINELA_TRANSACTION_TIMEOUT_S": "10",
        **{f"CENTINELA_{k.upper()}": v for k, v in extra.items()},
    }
    with log_path.open("ab") as log_file:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "centinela", "detect"],
            env=env,
            cwd=ROOT,
            stdout=log_file,
            stderr=log_file,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the detector finishes its batch and leaves), SIGKILL if it has not within 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def detector_settings(bootstrap: str, topics: Topics, group: str, bundle: Path, **extra: Any) -> Settings:
    """Settings for a detector run in this process (the ``in_process`` fixture), fast timers."""
    fields: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap},
        "topics": {
            "readings": topics.readings,
            "alerts": topics.alerts,
            "dlq": topics.dlq,
            "scores": topics.scores,
            "line": topics.line,
            "state": topics.state,
        },
        "group_id": group,
        "instance_id": unique_name("itest"),
        "bundle_path": bundle,
        "metrics_host": "127.0.0.1",
        "metrics_port": 0,
        "idle_timeout_s": 1e6,
        "watch_interval_s": 0.2,
        "transaction_timeout_s": 10,
        "lag_interval_s": 0.2,
    }
    fields.update(extra)
    return Settings(**fields)


def metric_total(port: int, name: str) -> float:
    """The sum of every series of counter ``name`` on a detector's metrics endpoint (0 if absent),
    or -1 while nothing answers there yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((f"{name} ", f"{name}{{"))
    )


def wait_until_read(process: subprocess.Popen[bytes], port: int, target: int, timeout_s: float = 60) -> float:
    """Return as soon as the detector serving metrics on ``port`` has read ``target`` readings
    (polled every 5 ms, so a fast detector is caught mid-stream); returns its count then."""
    deadline = time.monotonic() + timeout_s
    while (read := metric_total(port, READ)) < target:
        assert process.poll() is None, f"the detector exited ({process.returncode}) at {read} readings"
        assert time.monotonic() < deadline, f"only {read} of {target} readings read in {timeout_s:g} s"
        time.sleep(0.005)
    return read
