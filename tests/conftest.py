"""Shared by unit and integration tests: integration marking, the broker line in the summary, and the
Hypothesis profile (``fast`` unless ``--hypothesis-profile`` names another; see ``property_depth``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from tests.property_depth import FAST

settings.load_profile(FAST)  # pytest_configure loads --hypothesis-profile's over it

INTEGRATION_DIR = Path(__file__).parent / "integration"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration needs a broker, marked or not, so `-m integration` and
    # `-m "not integration"` always split the suite the same way. tryfirst: before `-m` deselects.
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    from tests.integration.kafka_helpers import BROKER_LINE_KEY

    line = config.stash.get(BROKER_LINE_KEY, None)
    if line is not None:
        terminalreporter.write_line(line)
