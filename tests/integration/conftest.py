"""Kafka fixtures for every integration test (documented in docs/broker.md; keep the names stable).

- ``kafka_bootstrap`` (session): the bootstrap string of a real broker. ``KAFKA_BOOTSTRAP_SERVERS``
  when set (checked within 10 s), else the local broker (reused if running, else started for the
  session and stopped at its end), else testcontainers Kafka where a Docker engine answers.
- ``kafka_broker`` (session): the same, with how it was obtained and its version.
- ``fresh_topic``: a factory, ``fresh_topic(partitions=1, prefix=None, config=None) -> name``;
  every topic it made is deleted after the test.
- ``fresh_group``: a unique consumer group id; ``kafka_helpers.new_group_id()`` gives more.
- ``kafka_config``: ``{"bootstrap.servers": ...}`` to extend with client settings.
- ``kcat``: a ``Kcat`` bound to the broker (``kcat.run([...])``, ``kcat.consume(topic)``).

Fixtures of the detector tests:

- ``in_process``: ``in_process(settings, clock=None) -> Running`` runs the detector in a thread;
  every one started is stopped (as by SIGTERM) at the end of the test, which fails if it raised.
- ``own_home``: a home for a broker of the test's own (``own_broker.OwnBroker``), sharing the
  main home's jars.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from detector.clock import SYSTEM_CLOCK, ManualClock
from detector.errors import CentinelaError
from devtools import broker as local_broker
from stream.runner import Running, run_detector
from stream.settings import Settings
from tests.integration.kafka_helpers import (
    BROKER_LINE_KEY,
    Kcat,
    ProvidedBroker,
    TopicFactory,
    new_group_id,
    provide_broker,
)
from tests.integration.polling import wait_for

logger = logging.getLogger(__name__)


def pytest_configure(config: pytest.Config) -> None:
    # Registered here rather than in pyproject.toml: the marker belongs to these tests and to
    # scripts/faults-under-load.sh, which runs them beside a CPU hog.
    config.addinivalue_line(
        "markers", "faults: a fault-tolerance test (SIGKILL, failover, broker outage), also run under load"
    )


@pytest.fixture(scope="session")
def kafka_broker(request: pytest.FixtureRequest) -> Iterator[ProvidedBroker]:
    stack = contextlib.ExitStack()
    try:
        provided = stack.enter_context(provide_broker())
    except CentinelaError as error:
        # pytest caches a session fixture's failure: every test reports this line, none waits again.
        pytest.fail(f"no Kafka broker for the integration tests: {error}", pytrace=False)
    with stack:
        line = provided.describe()
        logger.info("%s", line)
        request.config.stash[BROKER_LINE_KEY] = line
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"\n{line}")
        yield provided


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: ProvidedBroker) -> str:
    return kafka_broker.bootstrap


@pytest.fixture
def kafka_config(kafka_bootstrap: str) -> dict[str, str]:
    return {"bootstrap.servers": kafka_bootstrap}


@pytest.fixture
def fresh_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[TopicFactory]:
    factory = TopicFactory(kafka_bootstrap, prefix=f"test-{request.node.name[:60]}")
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def fresh_group(request: pytest.FixtureRequest) -> str:
    return new_group_id(f"group-{request.node.name[:60]}")


@pytest.fixture(scope="session")
def kcat(kafka_bootstrap: str) -> Iterator[Kcat]:
    runner = Kcat(kafka_bootstrap)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture
def in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Running]]:
    """Start the detector in a thread; it is stopped (SIGTERM-equivalent) at the end of the test."""
    for name in list(os.environ):
        if name.startswith("CENTINELA_"):
            monkeypatch.delenv(name)
    started: list[tuple[threading.Thread, threading.Event, list[BaseException]]] = []

    def start(settings: Settings, clock: ManualClock | None = None) -> Running:
        wall = SYSTEM_CLOCK if clock is None else clock
        stop = threading.Event()
        ready: list[Running] = []
        errors: list[BaseException] = []

        def target() -> None:
            try:
                run_detector(
                    settings, stop=stop, registry=CollectorRegistry(), clock=wall, on_start=ready.append
                )
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=target, name="detector", daemon=True)
        thread.start()
        started.append((thread, stop, errors))
        wait_for(lambda: bool(ready) or bool(errors) or not thread.is_alive(), 60, "the detector to start")
        if errors:
            raise errors[0]
        return ready[0]

    yield start
    for thread, stop, errors in started:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the detector did not stop within 30 s"
        assert not errors, errors


@pytest.fixture
def own_home(tmp_path: Path) -> Path:
    # Share the jars (and the class archive) of the main home instead of resolving them again.
    main = local_broker.BrokerHome.from_environment()
    local_broker.fetch(main)
    (tmp_path / "libs").symlink_to(main.libs, target_is_directory=True)
    for archive in main.root.glob("classes-*.jsa"):
        (tmp_path / archive.name).symlink_to(archive)
    return tmp_path
