"""Logging setup, done once by the CLI: readable lines on a terminal, JSON lines otherwise."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: int = logging.INFO) -> None:
    """Configure the root logger for a CLI process; library code only calls ``getLogger``."""
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("tensorflow", "absl", "matplotlib", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
