"""Waiting for something another process does: the one polling loop of the integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, *, every_s: float = 0.2) -> None:
    """Return once ``condition()`` holds; fail the test after ``timeout_s``, naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
