"""Liveness and readiness of one detector, and the HTTP endpoint that serves them with ``/metrics``.

- ``/healthz`` (alive): the consume loop has turned within ``stall_s``. A loop stuck in a call that
  never returns answers 503, so an orchestrator restarts the process.
- ``/readyz`` (doing its job): the loop runs, Kafka is reachable, and transactions are not
  failing — the latest outcome was a commit, or the latest abort is younger than ``stall_s``
  (one abort is retried; a run of them is not ready). The bundle is loaded before the endpoint
  starts, so a refused bundle never reaches here. An instance without partitions (more
  instances than partitions) is ready: it is a standby, doing what it should.

Both answer a small JSON object with the reasons, so ``curl`` says why.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from detector.clock import SYSTEM_CLOCK, MonotonicClock

DEFAULT_STALL_S = 60.0


class Health:
    """What the loop reports as it turns; read by the HTTP threads (plain attribute writes)."""

    def __init__(self, stall_s: float = DEFAULT_STALL_S, clock: MonotonicClock = SYSTEM_CLOCK) -> None:
        self.stall_s = stall_s
        self._clock = clock.monotonic
        self.last_beat: float | None = None
        self.broker_up = True
        self.assigned = 0
        self.last_commit: float | None = None
        self.last_abort: float | None = None

    def beat(self) -> None:
        self.last_beat = self._clock()

    def committed(self) -> None:
        self.last_commit = self._clock()

    def aborted(self) -> None:
        self.last_abort = self._clock()

    def alive(self) -> tuple[bool, dict[str, Any]]:
        now = self._clock()
        if self.last_beat is None:
            return True, {"loop": "starting"}  # starting up is alive; readiness says it is not serving
        idle = now - self.last_beat
        return idle <= self.stall_s, {"loop_seconds_since_turn": round(idle, 3), "stall_s": self.stall_s}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        now = self._clock()
        problems = []
        if self.last_beat is None:
            problems.append("the consume loop has not started")
        elif now - self.last_beat > self.stall_s:
            problems.append(f"the consume loop has not turned for {now - self.last_beat:.0f} s")
        if not self.broker_up:
            problems.append("Kafka is unreachable")
        failing = self.last_abort is not None and (
            self.last_commit is None or self.last_abort > self.last_commit
        )
        if (
            failing
            and self.last_abort is not None
            and now - (self.last_commit or self.last_abort) > self.stall_s
        ):
            problems.append("transactions keep aborting")
        detail = {"assigned_partitions": self.assigned, "problems": problems}
        return not problems, detail


def serve_endpoints(
    registry: CollectorRegistry, health: Health, host: str, port: int
) -> tuple[ThreadingHTTPServer, int]:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` in a daemon thread (port 0: any)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in {"/healthz", "/readyz"}:
                ok, detail = health.alive() if path == "/healthz" else health.ready()
                body = json.dumps({"ok": ok, **detail}).encode() + b"\n"
                self._send(200 if ok else 503, body, "application/json")
            else:
                self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # a scrape every 15 s is not news

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server, int(server.server_address[1])
