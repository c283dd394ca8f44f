"""A real Prometheus (Debian's /usr/bin/prometheus) for the integration tests: free port, temporary
storage, 1 s scrapes and rule evaluation with the repository's alert rules."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools import dashboards
from tests.integration.local_ports import free_port
from tests.integration.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))


@dataclass(frozen=True)
class Prometheus:
    """A running Prometheus and the few API calls the checks need."""

    url: str
    log: Path

    def _get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:  # 400 for a bad query: say which and why
            body = json.load(error)
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}") from error
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/api/v1/query", query=expr)["result"]
        return result

    def query_range(self, expr: str, seconds: int) -> list[dict[str, Any]]:
        end = time.time()
        result: list[dict[str, Any]] = self._get(
            "/api/v1/query_range", query=expr, start=f"{end - seconds:.3f}", end=f"{end:.3f}", step="1"
        )["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self._get("/api/v1/rules")["groups"] for rule in group["rules"]]

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        alerts = self._get("/api/v1/alerts")["alerts"]
        return [a for a in alerts if a["labels"].get("alertname") == alertname and a["state"] == "firing"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False


@contextmanager
def running_prometheus(targets: list[str], workdir: Path) -> Iterator[Prometheus]:
    """Prometheus scraping ``targets`` as job ``centinela`` every second, with the repository's
    alert rules evaluated every second. Stopped (and its storage left in ``workdir``) on exit."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        pytest.fail("prometheus is not installed: run `make setup` (scripts/system-deps.sh installs it)")
    port = free_port()
    # JSON is YAML, so no YAML library is needed to write the config.
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in RULE_FILES],
        "scrape_configs": [{"job_name": dashboards.DETECTOR_JOB, "static_configs": [{"targets": targets}]}],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    log = workdir / "prometheus.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", log)
    try:
        wait_for(lambda: server.ready() or process.poll() is not None, 30, "Prometheus to start")
        assert process.poll() is None, f"Prometheus exited:\n{log.read_text()}"
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_scrapes(prometheus: Prometheus, scrapes: int = 3, timeout_s: float = 30) -> None:
    """Until the target is up and has been scraped ``scrapes`` times, so rates have samples."""

    def scraped() -> bool:
        result = prometheus.query(f'count_over_time(up{{job="{dashboards.DETECTOR_JOB}"}}[1m])')
        up = prometheus.query(f'up{{job="{dashboards.DETECTOR_JOB}"}}')
        return bool(result and up) and float(result[0]["value"][1]) >= scrapes and up[0]["value"][1] == "1"

    wait_for(scraped, timeout_s, f"{scrapes} successful scrapes")
