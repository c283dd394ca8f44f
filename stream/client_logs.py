"""librdkafka's own log lines, through Python logging (so in the one JSON format) and deduplicated.

Without this, librdkafka writes raw ``%3|...|FAIL|`` lines to stderr: one per reconnect attempt,
thousands in five minutes of an unreachable broker. Through the ``librdkafka`` logger they take the
process's format and level (``CENTINELA_LOG_LEVEL``), and a message seen before is let through at
most once per ``every_s`` with the number of repeats it stands for.
"""

from __future__ import annotations

import logging
import re

from detector.clock import SYSTEM_CLOCK, MonotonicClock

LOGGER_NAME = "librdkafka"
_DIGITS = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """Lets a message through the first time, then once per ``every_s`` with ``(+N repeats)``."""

    def __init__(self, every_s: float = 60.0, clock: MonotonicClock = SYSTEM_CLOCK) -> None:
        super().__init__()
        self.every_s = every_s
        self._clock = clock.monotonic
        self._seen: dict[str, tuple[float, int]] = {}  # key -> (last shown, repeats since)

    def filter(self, record: logging.LogRecord) -> bool:
        # Numbers (timings, offsets, ports) differ between repeats of one problem.
        key = _DIGITS.sub("#", record.getMessage())
        now = self._clock()
        shown = self._seen.get(key)
        if shown is not None and now - shown[0] < self.every_s:
            self._seen[key] = (shown[0], shown[1] + 1)
            return False
        repeats = 0 if shown is None else shown[1]
        if len(self._seen) > 1000:  # a bounded memory of distinct messages
            self._seen.clear()
        self._seen[key] = (now, 0)
        if repeats:
            record.msg = f"{record.getMessage()} (+{repeats} repeats in the last {self.every_s:g} s)"
            record.args = ()
        return True


def librdkafka_logger() -> logging.Logger:
    """The logger to pass as a client's ``logger`` setting (one filter, however many clients)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, RepeatFilter) for f in logger.filters):
        logger.addFilter(RepeatFilter())
    return logger
