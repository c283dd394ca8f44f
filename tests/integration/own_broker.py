"""A Kafka broker of a test's own (own home, own ports), started and stopped with ``centinela broker``,
for tests that stop a broker: the session's shared one must never go away. The ``own_home``
fixture (tests/integration/conftest.py) gives the home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.kafka_helpers import unique_name
from tests.integration.local_ports import free_port_pair


def broker_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``centinela broker ARGS`` on the broker living in ``home``."""
    return subprocess.run(
        [sys.executable, "-m", "centinela", "broker", *args],
        env={**os.environ, "CENTINELA_KAFKA_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class OwnBroker:
    """A broker in ``home`` on a free port pair; :meth:`stop` and :meth:`start` again keep its data."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port_pair()
        self.bootstrap = f"127.0.0.1:{self.port}"

    def start(self) -> None:
        started = broker_cli(self.home, "start", "--port", str(self.port))
        assert started.returncode == 0, started.stderr

    def stop(self) -> None:
        assert broker_cli(self.home, "stop").returncode == 0

    def topic(self, partitions: int, prefix: str = "topic") -> str:
        """A new topic on this broker (a ``fresh_topic``-like factory; never deleted: the home is)."""
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        name = unique_name(prefix)
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
            future.result(30)
        return name
