"""What every benchmark produces: figures, a same-run baseline, ratios, written as MEASURE.md says."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(os.environ.get("CENTINELA_BENCH_RESULTS", "bench/results"))
# Told ``(done, of)`` after each repetition of ``median_of`` (``centinela bench``'s progress bar).
repetition_done: ContextVar[Callable[[int, int], None] | None] = ContextVar("repetition_done", default=None)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median_of(repetitions: int, measure: Callable[[], float]) -> float:
    """Median of ``repetitions`` calls of ``measure`` (at least 3, per MEASURE.md); each one done is
    told to ``repetition_done`` when set."""
    count = max(3, repetitions)
    told = repetition_done.get()
    values = []
    for done in range(1, count + 1):
        values.append(measure())
        if told is not None:
            told(done, count)
    return statistics.median(values)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


@dataclass
class BenchResult:
    name: str
    figures: dict[str, float]
    baseline: dict[str, float] = field(default_factory=dict)
    ratio: dict[str, float] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    notes: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cores": os.cpu_count(), "cpu": cpu_model()},
            "figures": self.figures,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "targets": self.targets,
            "notes": self.notes,
        }

    def write(self, results_dir: Path = RESULTS_DIR) -> Path:
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"{self.name}.json"
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path
