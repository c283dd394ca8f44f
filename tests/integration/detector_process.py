"""Run ``centinela detect`` as a subprocess with settings in its environment, for crash tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from socket import socket
from typing import Any

import orjson

from tests.integration.kafka_helpers import unique_name
from tests.integration.test_detector_service import Topics, committed_all, read_topic

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_detector(
    bootstrap: str, topics: Topics, group: str, bundle: Path, log_path: Path, **extra: str
) -> subprocess.Popen[bytes]:
    """One detector process; ``extra`` are CENTINELA_* settings (name without the prefix)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CENTINELA_")},
        **topics.env(),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CENTINELA_GROUP_ID": group,
        "CENTINELA_INSTANCE_ID": unique_name("eo"),
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


def committed_alerts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every committed alert (read_committed), parsed."""
    return [orjson.loads(m.value()) for m in read_topic(bootstrap, topic)]


def comparable(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert's payload without the fields that depend on wall time."""
    return {k: v for k, v in alert.items() if k != "emitted_at"}


def settled(bootstrap: str, group: str, topic: str) -> bool:
    """``committed_all``, reading a timeout while the group rebalances as "not yet"."""
    from confluent_kafka import KafkaException

    try:
        return committed_all(bootstrap, group, topic)
    except KafkaException:
        return False
