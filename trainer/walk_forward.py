"""``--walk-forward K``: retrain on growing history, test on the next period, report mean ± sd."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from trainer.data import load_csv
from trainer.metrics import METRIC_KEYS, summarize_folds
from trainer.pipeline import TrainOptions, run_training
from trainer.split import walk_forward_bounds


def run_walk_forward(
    options: TrainOptions, folds: int, on_fold: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Every model of ``options`` on each fold; per-fold test metrics and their mean ± sd."""
    # The folds compare the station models; the line's calibration is the final run's alone.
    options = replace(options, topology=None)
    dataset = load_csv(options.data, sensors=options.sensors)
    per_fold: list[dict[str, Any]] = []
    for k, bounds in enumerate(walk_forward_bounds(dataset, folds)):
        if on_fold is not None:
            on_fold(k + 1, folds)
        result = run_training(options, dataset=dataset, bounds=bounds)
        per_fold.append(
            {
                "fold": k + 1,
                "validation_start": str(bounds.validation_start) + "Z",
                "test_start": str(bounds.test_start) + "Z",
                "test_end": None if bounds.end is None else str(bounds.end) + "Z",
                "split": {name: ws.summary() for name, ws in result.prepared.splits.items()},
                "aggregation": result.aggregation,
                "models": {
                    name: {"mode": m.mode, **{key: m.test[key] for key in METRIC_KEYS}}
                    for name, m in result.models.items()
                },
            }
        )
    names = list(per_fold[0]["models"]) if per_fold else []
    return {
        "folds": per_fold,
        "summary": {name: summarize_folds([f["models"][name] for f in per_fold]) for name in names},
    }


def render_walk_forward(walk: dict[str, Any]) -> str:
    lines = [
        "| model | " + " | ".join(METRIC_KEYS) + " |",
        "|---|" + "---:|" * len(METRIC_KEYS),
    ]
    for name, summary in walk["summary"].items():
        cells = [f"{summary[k]['mean']:.3f} ± {summary[k]['sd']:.3f}" for k in METRIC_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
