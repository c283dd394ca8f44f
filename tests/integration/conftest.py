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
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest

from detector.errors import CentinelaError
from tests.integration.kafka_helpers import (
    BROKER_LINE_KEY,
    Kcat,
    ProvidedBroker,
    TopicFactory,
    new_group_id,
    provide_broker,
)

logger = logging.getLogger(__name__)


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
