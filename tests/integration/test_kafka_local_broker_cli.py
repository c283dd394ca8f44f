"""``centinela broker start|status|stop`` on a broker of its own (own home, own ports)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools import broker as local_broker
from tests.integration.local_ports import free_port_pair
from tests.integration.own_broker import broker_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_start_status_second_start_and_stop(own_home: Path) -> None:
    port = free_port_pair()
    version = local_broker.kafka_version(own_home / "libs")
    try:
        started = broker_cli(own_home, "start", "--port", str(port))
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith(f"started Kafka {version} at 127.0.0.1:{port}")

        again = broker_cli(own_home, "start", "--port", str(port))
        assert again.returncode == 0
        assert again.stdout.startswith("already running:")

        status = broker_cli(own_home, "status")
        assert status.stdout.startswith(f"running: Kafka {version} at 127.0.0.1:{port}")
        assert local_broker.probe_cluster(f"127.0.0.1:{port}", timeout_s=10).broker_count == 1
    finally:
        stopped = broker_cli(own_home, "stop")
    assert stopped.returncode == 0
    assert stopped.stdout.startswith("stopped (pid")
    assert broker_cli(own_home, "status").stdout.strip() == "not running"
    assert broker_cli(own_home, "stop").stdout.strip() == "not running"
