"""``centinela broker start|status|stop`` on a broker of its own (own home, own ports)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from centinela import local_broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port < 65535:
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise AssertionError("no two free consecutive ports")


@pytest.fixture
def own_home(tmp_path: Path) -> Path:
    # Share the jars (and the class archive) of the main home instead of resolving them again.
    main = local_broker.BrokerHome.from_environment()
    local_broker.fetch(main)
    (tmp_path / "libs").symlink_to(main.libs, target_is_directory=True)
    for archive in main.root.glob("classes-*.jsa"):
        (tmp_path / archive.name).symlink_to(archive)
    return tmp_path


def _centinela(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "centinela", "broker", *args],
        env={**os.environ, "CENTINELA_KAFKA_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_start_status_second_start_and_stop(own_home: Path) -> None:
    port = _free_port_pair()
    version = local_broker.kafka_version(own_home / "libs")
    try:
        started = _centinela(own_home, "start", "--port", str(port))
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith(f"started Kafka {version} at 127.0.0.1:{port}")

        again = _centinela(own_home, "start", "--port", str(port))
        assert again.returncode == 0
        assert again.stdout.startswith("already running:")

        status = _centinela(own_home, "status")
        assert status.stdout.startswith(f"running: Kafka {version} at 127.0.0.1:{port}")
        assert local_broker.probe_cluster(f"127.0.0.1:{port}", timeout_s=10).broker_count == 1
    finally:
        stopped = _centinela(own_home, "stop")
    assert stopped.returncode == 0
    assert stopped.stdout.startswith("stopped (pid")
    assert _centinela(own_home, "status").stdout.strip() == "not running"
    assert _centinela(own_home, "stop").stdout.strip() == "not running"
