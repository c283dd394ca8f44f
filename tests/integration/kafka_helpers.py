"""Helpers behind the Kafka fixtures of tests/integration/conftest.py (names listed in docs/broker.md).

Kept out of the conftest so tests and benchmarks can import them: a broker provider that follows the
order of docs/broker.md, topic and group factories, and a kcat runner.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from detector.errors import BrokerError, CentinelaError
from devtools import broker as local_broker
from devtools.broker import BOOTSTRAP_ENV, ProvidedBroker

PROBE_TIMEOUT_S = 10.0
# Where the session's broker line is kept for the terminal summary (tests/conftest.py).
BROKER_LINE_KEY = pytest.StashKey[str]()


def unique_name(prefix: str) -> str:
    """A valid topic or group name no other test (or earlier run on the same broker) uses."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", prefix).strip("-.")[:100] or "test"
    return f"{cleaned}-{uuid.uuid4().hex[:12]}"


def new_group_id(prefix: str = "test-group") -> str:
    """A fresh consumer group id (the ``fresh_group`` fixture gives one per test)."""
    return unique_name(prefix)


@contextlib.contextmanager
def provide_broker(environ: dict[str, str] | None = None) -> Iterator[ProvidedBroker]:
    """The environment's cluster, else the local broker, else testcontainers; cleaned up on exit."""
    env = dict(os.environ) if environ is None else environ
    with contextlib.ExitStack() as stack:
        try:
            provided = stack.enter_context(local_broker.provide(env, probe_timeout_s=PROBE_TIMEOUT_S))
        except CentinelaError as local_error:
            if env.get(BOOTSTRAP_ENV, "").strip():
                raise  # a wrong address is the user's to fix, not a reason to start something else
            provided = stack.enter_context(_testcontainers_kafka(local_error))
        yield provided


@contextlib.contextmanager
def _testcontainers_kafka(local_error: Exception) -> Iterator[ProvidedBroker]:
    """Kafka in a container, for machines with a Docker engine but no Java or Maven."""
    try:
        import docker

        docker.from_env().ping()
    except Exception as docker_error:
        raise BrokerError(
            f"no Kafka for the integration tests: {BOOTSTRAP_ENV} is unset, the local broker cannot run "
            f"({local_error}) and no Docker engine answers ({docker_error})"
        ) from docker_error
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer().with_kraft() as container:
        yield ProvidedBroker(
            bootstrap=container.get_bootstrap_server(),
            source="testcontainers",
            version=container.image,
            started_here=True,
        )


@dataclass
class TopicFactory:
    """Creates uniquely named topics and deletes them all at :meth:`cleanup`."""

    bootstrap: str
    prefix: str = "test"
    created: list[str] = field(default_factory=list)

    def __call__(
        self, partitions: int = 1, *, prefix: str | None = None, config: dict[str, str] | None = None
    ) -> str:
        from kafkakit.admin import ensure_topic

        name = unique_name(prefix or self.prefix)
        # Returns once every partition has a leader: producing before that would fail at first.
        ensure_topic({"bootstrap.servers": self.bootstrap}, name, partitions, 20.0, config=config)
        self.created.append(name)
        return name

    def cleanup(self) -> None:
        from kafkakit.admin import delete_topics

        # A test that deleted its own topic is fine; the broker lives on either way.
        delete_topics({"bootstrap.servers": self.bootstrap}, self.created, 20.0)
        self.created.clear()


class Kcat:
    """Runs Debian's kcat against the test broker.

    Debian's kcat links Debian's older librdkafka. If that one cannot talk to the broker, kcat is
    run again with ``LD_LIBRARY_PATH`` pointing at the librdkafka bundled in the confluent-kafka
    wheel (a ``librdkafka.so.1`` symlink in a temporary folder).
    """

    def __init__(self, bootstrap: str, executable: str | None = None) -> None:
        found = executable or shutil.which("kcat") or shutil.which("kafkacat")
        if found is None:
            raise BrokerError("kcat is not installed; run `make system-deps` (Debian package kcat)")
        self.executable = found
        self.bootstrap = bootstrap
        self._env: dict[str, str] | None = None
        self._libdir: tempfile.TemporaryDirectory[str] | None = None

    def run(
        self, args: Sequence[str], *, input: bytes | None = None, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[bytes]:
        """``kcat -b BOOTSTRAP ARGS``; raises BrokerError with kcat's stderr if it fails."""
        env = self._environment()
        done = subprocess.run(
            [self.executable, "-b", self.bootstrap, *args],
            input=input,
            capture_output=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            raise BrokerError(
                f"kcat {' '.join(args)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}"
            )
        return done

    def consume(self, topic: str, *, fmt: str = "%k\t%s\\n", timeout: float = 30.0) -> list[str]:
        """Everything on ``topic`` from the beginning, one formatted line per message."""
        done = self.run(["-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt], timeout=timeout)
        return done.stdout.decode().splitlines()

    @property
    def librdkafka_version(self) -> str:
        """The librdkafka kcat runs with (after the fallback, the wheel's one)."""
        done = subprocess.run(
            [self.executable, "-V"], capture_output=True, timeout=10, env=self._environment(), check=False
        )
        match = re.search(rb"librdkafka ([0-9][^ ]*)", done.stdout + done.stderr)
        return match.group(1).decode() if match else "unknown"

    def use_bundled_librdkafka(self) -> None:
        """Switch to the wheel's librdkafka now (tests of the fallback itself)."""
        self._env = self._with_bundled_librdkafka()

    def close(self) -> None:
        if self._libdir is not None:
            self._libdir.cleanup()
            self._libdir = None

    def _environment(self) -> dict[str, str]:
        if self._env is None:
            self._env = dict(os.environ)
            if not self._talks(self._env):
                self._env = self._with_bundled_librdkafka()
        return self._env

    def _talks(self, env: dict[str, str]) -> bool:
        probe = subprocess.run(
            [self.executable, "-b", self.bootstrap, "-L", "-m", "10"],
            capture_output=True,
            timeout=30,
            env=env,
            check=False,
        )
        return probe.returncode == 0 and b"brokers:" in probe.stdout

    def _with_bundled_librdkafka(self) -> dict[str, str]:
        bundled = bundled_librdkafka()
        if bundled is None:
            raise BrokerError("kcat cannot talk to the broker and no bundled librdkafka was found")
        self._libdir = tempfile.TemporaryDirectory(prefix="kcat-librdkafka-")
        (Path(self._libdir.name) / "librdkafka.so.1").symlink_to(bundled)
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (self._libdir.name, env.get("LD_LIBRARY_PATH")) if p
        )
        if not self._talks(env):
            raise BrokerError(f"kcat cannot talk to the broker at {self.bootstrap}, even with {bundled}")
        return env


def bundled_librdkafka() -> Path | None:
    """The librdkafka shipped inside the confluent-kafka wheel (auditwheel's ``*.libs`` folder)."""
    import confluent_kafka

    package = Path(confluent_kafka.__file__).resolve().parent
    for folder in (package.parent / "confluent_kafka.libs", package / ".libs"):
        matches = sorted(folder.glob("librdkafka*.so*"))
        if matches:
            return matches[0]
    return None
