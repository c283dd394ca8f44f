"""``--sweep``: search windows and architectures in parallel processes, ranked by validation F1.

Ranking by test F1, as the original did, picks the configuration that got lucky on the test
period; here test metrics are recorded for reference but never used to choose. Results go to a
JSONL file one trial per line, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from detector.errors import ConfigError
from trainer.metrics import METRIC_KEYS
from trainer.model import FitConfig, ModelConfig, parse_units
from trainer.pipeline import TrainOptions, run_training

log = logging.getLogger(__name__)

# The original pipeline's search space (its README); 2,304 trials: hours on 2 cores.
FULL_GRID: dict[str, list[Any]] = {
    "window": [24, 36, 48],
    "step": [1, 5, 10],
    "encoder_units": [(128, 64), (64, 32)],
    "decoder_units": [(64, 128), (32, 64)],
    "dropout": [0.1, 0.2],
    "learning_rate": [1e-3, 5e-4],
    "batch_size": [32, 64],
    "epochs": [60, 100],
    "patience": [5, 10],
    "validation_split": [0.1, 0.2],
}
# The default: window and architecture, 8 trials: 6.5 minutes on 2 shared cores (measured).
REDUCED_GRID: dict[str, list[Any]] = {
    "window": [24, 30, 36, 48],
    "step": [5],
    "encoder_units": [(128, 64), (64, 32)],
    "decoder_units": ["mirror"],
    "dropout": [0.2],
    "learning_rate": [1e-3],
    "batch_size": [64],
    "epochs": [30],
    "patience": [5],
    "validation_split": [0.1],
}
GRID_OPTIONS = {
    "window": "--window-grid",
    "step": "--step-grid",
    "encoder_units": "--encoder-grid",
    "decoder_units": "--decoder-grid",
    "dropout": "--dropout-grid",
    "learning_rate": "--lr-grid",
    "batch_size": "--batch-grid",
    "epochs": "--epochs-grid",
    "patience": "--patience-grid",
    "validation_split": "--val-split-grid",
}


def parse_grid(name: str, text: str) -> list[Any]:
    """``"24,36,48"`` for numbers; ``"128,64;64,32"`` for layer lists (``;`` between choices)."""
    option = GRID_OPTIONS[name]
    if name in ("encoder_units", "decoder_units"):
        return [parse_units(part, option) for part in text.split(";") if part.strip()]
    kind: type = int if name in ("window", "step", "batch_size", "epochs", "patience") else float
    try:
        values = [kind(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError as error:
        raise ConfigError(f"{option} takes comma-separated numbers, got {text!r}") from error
    if not values:
        raise ConfigError(f"{option} is empty")
    return values


def build_grid(overrides: dict[str, list[Any]], full: bool = False) -> list[dict[str, Any]]:
    """Every trial configuration: the base grid with ``overrides`` replacing whole dimensions."""
    grid = dict(FULL_GRID if full else REDUCED_GRID)
    grid.update(overrides)
    keys = list(grid)
    trials = []
    for values in itertools.product(*(grid[k] for k in keys)):
        trial = dict(zip(keys, values, strict=True))
        if trial["decoder_units"] == "mirror":
            trial["decoder_units"] = tuple(reversed(trial["encoder_units"]))
        trial["encoder_units"] = list(trial["encoder_units"])
        trial["decoder_units"] = list(trial["decoder_units"])
        trials.append(trial)
    unique = {trial_key(t): t for t in trials}
    return list(unique.values())


def trial_key(trial: dict[str, Any]) -> str:
    return json.dumps(trial, sort_keys=True)


def trial_options(base: TrainOptions, trial: dict[str, Any]) -> TrainOptions:
    return replace(
        base,
        window=int(trial["window"]),
        step=int(trial["step"]),
        model=ModelConfig(
            encoder_units=tuple(trial["encoder_units"]),
            decoder_units=tuple(trial["decoder_units"]),
            dropout=float(trial["dropout"]),
            learning_rate=float(trial["learning_rate"]),
            input_noise=base.model.input_noise,
        ),
        fit=FitConfig(
            batch_size=int(trial["batch_size"]),
            epochs=int(trial["epochs"]),
            validation_split=float(trial["validation_split"]),
            patience=int(trial["patience"]),
            seed=base.fit.seed,
        ),
        advanced_models=False,
        use_labels=False,
        topology=None,  # the segments' calibration does not depend on the trial: the final run does it
    )


def _init_worker(threads: int) -> None:
    """Each worker gets its share of the cores; TF must hear it before it starts its pools."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def run_trial(base: TrainOptions, trial: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one configuration (in a worker process); JSON-able result."""
    result = run_training(trial_options(base, trial))
    ae = result.autoencoder
    return {
        "key": trial_key(trial),
        "config": trial,
        "aggregation": result.aggregation,
        "threshold": ae.calibration.threshold,
        "validation": {k: ae.validation[k] for k in METRIC_KEYS},
        "test": {k: ae.test[k] for k in METRIC_KEYS},
        "epochs_run": result.trained.epochs_run,
        "seconds": result.seconds["total"],
    }


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    """Finished trials of an earlier run; a torn last line (killed mid-write) is ignored."""
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "key" in record:
            done[record["key"]] = record
    return done


def rank(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best first by validation F1, then validation AP: never by test."""

    def score(r: dict[str, Any]) -> tuple[float, float]:
        val = r["validation"]
        return (val.get("f1") or 0.0, val.get("average_precision") or 0.0)

    return sorted(results, key=score, reverse=True)


@dataclass
class SweepOutcome:
    ranked: list[dict[str, Any]]
    results_path: Path
    ran: int
    resumed: int


def run_sweep(
    base: TrainOptions,
    trials: list[dict[str, Any]],
    results_path: Path,
    workers: int = 2,
    on_done: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> SweepOutcome:
    """Run the trials not already in ``results_path`` on ``workers`` spawned processes."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    results_path.parent.mkdir(parents=True, exist_ok=True)
    done = read_results(results_path)
    wanted = {trial_key(t) for t in trials}
    pending = [t for t in trials if trial_key(t) not in done]
    resumed = len(wanted & set(done))
    total = len(trials)
    finished = resumed
    context = multiprocessing.get_context("spawn")
    threads = max(1, (multiprocessing.cpu_count() or 1) // workers)
    with (
        ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(threads,)
        ) as pool,
        results_path.open("a", encoding="utf-8") as sink,
    ):
        queue: Iterator[dict[str, Any]] = iter(pending)
        running: set[Future[dict[str, Any]]] = set()
        # Submit only as many as run at once so an interrupt loses at most ``workers`` trials.
        for trial in itertools.islice(queue, workers):
            running.add(pool.submit(run_trial, base, trial))
        while running:
            completed, running = wait(running, return_when=FIRST_COMPLETED)
            for future in completed:
                record = future.result()
                sink.write(json.dumps(record, allow_nan=True) + "\n")
                sink.flush()
                done[record["key"]] = record
                finished += 1
                if on_done is not None:
                    on_done(finished, total, record)
                following = next(queue, None)
                if following is not None:
                    running.add(pool.submit(run_trial, base, following))
    ranked = rank([done[k] for k in wanted if k in done])
    return SweepOutcome(ranked, results_path, ran=len(pending), resumed=resumed)
