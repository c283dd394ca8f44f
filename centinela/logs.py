"""Logging setup, done once by the CLI: readable lines on a terminal, JSON lines otherwise."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

from detector.errors import ConfigError

LEVEL_ENV = "CENTINELA_LOG_LEVEL"


# Context a log call may attach with ``extra={...}``; shipped as fields of their own so a log
# search can filter by station or segment instead of parsing messages.
CONTEXT_FIELDS = ("station", "segment", "line", "incident", "partition", "topic")


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def level_from_environment(default: int, environ: dict[str, str] | None = None) -> int:
    """``CENTINELA_LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR) if set, else ``default``."""
    value = (os.environ if environ is None else environ).get(LEVEL_ENV, "").strip()
    if not value:
        return default
    level = logging.getLevelNamesMapping().get(value.upper())
    if level is None:
        raise ConfigError(f"{LEVEL_ENV}={value!r}: expected one of DEBUG, INFO, WARNING, ERROR")
    return level


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
