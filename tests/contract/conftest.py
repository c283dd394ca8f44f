"""The real broker for the Kafka side of the contract tests: the same provider as
tests/integration (``KAFKA_BOOTSTRAP_SERVERS``, else the local broker, shared through its leases,
else testcontainers). Requested only by the ``integration``-marked parameters."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from detector.errors import CentinelaError
from tests.integration.kafka_helpers import provide_broker


@pytest.fixture(scope="session")
def contract_kafka_bootstrap() -> Iterator[str]:
    stack = contextlib.ExitStack()
    try:
        provided = stack.enter_context(provide_broker())
    except CentinelaError as error:
        pytest.fail(f"no Kafka broker for the contract tests: {error}", pytrace=False)
    with stack:
        yield provided.bootstrap
