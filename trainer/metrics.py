"""Detection metrics: window level (as the original reported) and event level (as operators see it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.calibration import best_f1_every_threshold
from trainer.prepare import Event, WindowSet

METRIC_KEYS = ("precision", "recall", "f1", "roc_auc", "average_precision")


def window_metrics(
    scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int8], threshold: float
) -> dict[str, Any]:
    """Precision, recall, F1 at the threshold; ROC-AUC and AP over all thresholds; confusion matrix."""
    from sklearn.metrics import (
        average_precision_score,
        classification_report,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y = np.asarray(labels).astype(int)
    predicted = (np.asarray(scores) > threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, average="binary", zero_division=0
    )
    both = len(np.unique(y)) == 2
    # The calibration's own search over every cut, run on these windows.
    best_possible = best_f1_every_threshold(scores, y).counts.f1 if both else float("nan")
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "roc_auc": float(roc_auc_score(y, scores)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, scores)) if both else float("nan"),
        # The F1 of the best threshold for these very windows: what calibration could at most have
        # given here. Context for the calibrated F1 above, never used to choose anything.
        "best_possible_f1": best_possible,
        "threshold": float(threshold),
        "confusion_matrix": confusion_matrix(y, predicted, labels=[0, 1]).tolist(),
        "classification_report": classification_report(
            y, predicted, labels=[0, 1], target_names=["normal", "anomaly"], output_dict=True, zero_division=0
        ),
        "windows": len(y),
        "positives": int(y.sum()),
    }


def event_metrics(windows: WindowSet, alarms: npt.NDArray[np.bool_], length: timedelta) -> dict[str, Any]:
    """Per labelled event: caught if an alarming window of its station overlaps it, and how late.

    The delay runs from the event's first labelled sample to the end of the first alarming window
    that contains part of it: the earliest moment a streaming detector could have raised the alarm.
    """
    starts = windows.ends - np.timedelta64(int(length.total_seconds()), "s")
    detail = [_one_event(event, windows, starts, alarms) for event in windows.events]
    caught = [d for d in detail if d["caught"]]
    delays = [d["delay_minutes"] for d in caught]
    return {
        "events": len(detail),
        "caught": len(caught),
        "event_recall": len(caught) / len(detail) if detail else float("nan"),
        "median_delay_minutes": float(np.median(delays)) if delays else float("nan"),
        "max_delay_minutes": float(np.max(delays)) if delays else float("nan"),
        "detail": detail,
    }


def _one_event(
    event: Event, windows: WindowSet, starts: npt.NDArray[np.datetime64], alarms: npt.NDArray[np.bool_]
) -> dict[str, Any]:
    mine = windows.station_ids == event.station_id
    overlapping = mine & (starts <= event.end) & (windows.ends > event.start)
    hits = np.flatnonzero(overlapping & alarms)
    record: dict[str, Any] = {
        "station_id": event.station_id,
        "start": str(np.datetime_as_string(event.start, unit="s")) + "Z",
        "samples": int((event.end - event.start) // np.timedelta64(1, "m")) + 1,
        "caught": bool(len(hits)),
        "delay_minutes": None,
    }
    if len(hits):
        first_end = windows.ends[hits].min()
        record["delay_minutes"] = float((first_end - event.start) / np.timedelta64(1, "m"))
    return record


def summarize_folds(folds: Sequence[dict[str, float]], keys: Sequence[str] = METRIC_KEYS) -> dict[str, Any]:
    """Mean and sample standard deviation of each metric over walk-forward folds."""
    summary: dict[str, Any] = {}
    for key in keys:
        values = np.array([f[key] for f in folds if key in f], dtype=np.float64)
        values = values[np.isfinite(values)]
        summary[key] = {
            "mean": float(values.mean()) if len(values) else float("nan"),
            "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "n": len(values),
        }
    return summary
