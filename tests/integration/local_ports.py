"""Free TCP ports on 127.0.0.1 for the servers a test starts (metrics, Prometheus, its own broker)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now (another process could still take it before the test does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port_pair() -> int:
    """A free port whose successor is free too: a local broker listens on both (broker, controller)."""
    for _ in range(50):
        port = free_port()
        if port < 65535:
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise AssertionError("no two free consecutive ports")
