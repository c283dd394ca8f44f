"""A wrong ``KAFKA_BOOTSTRAP_SERVERS`` fails within seconds, naming the address; never a hang."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from detector.errors import BrokerError
from devtools.broker import probe_cluster

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
NOBODY = "127.0.0.1:1"


def test_probe_of_a_closed_port_fails_fast_naming_it() -> None:
    began = time.monotonic()
    with pytest.raises(BrokerError, match=r"127\.0\.0\.1:1\b"):
        probe_cluster(NOBODY, timeout_s=10)
    assert time.monotonic() - began < 5


def test_a_test_session_with_a_wrong_bootstrap_fails_within_seconds() -> None:
    # A separate pytest process: this session's own broker fixture must stay untouched.
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": NOBODY}
    target = "tests/integration/test_kafka_roundtrip.py::test_what_kcat_writes_the_project_reads"
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - began

    assert done.returncode != 0
    assert f"Kafka at {NOBODY}" in done.stdout, done.stdout[-3000:]
    assert elapsed < 30, f"took {elapsed:.1f} s"
