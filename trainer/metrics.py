"""Detection metrics: window level (as the original reported) and event level (as operators see it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from trainer.calibration import best_f1_every_threshold
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


def alarm_rises(windows: WindowSet, alarms: npt.NDArray[np.bool_], step: timedelta) -> npt.NDArray[np.bool_]:
    """Alarming windows whose station's previous window (one step earlier) did not alarm: where an
    alarm is raised, as an incident would open."""
    follows = np.zeros(len(alarms), dtype=bool)
    if len(alarms) > 1:
        same = windows.station_ids[1:] == windows.station_ids[:-1]
        adjacent = (windows.ends[1:] - windows.ends[:-1]) == np.timedelta64(step)
        follows[1:] = same & adjacent & alarms[:-1]
    return np.asarray(alarms & ~follows)


def event_metrics(
    windows: WindowSet, alarms: npt.NDArray[np.bool_], length: timedelta, step: timedelta | None = None
) -> dict[str, Any]:
    """Per labelled event: caught if an alarm of its station is *raised* in a window overlapping it,
    and how late; false alarms: alarms raised on normal windows (label 0) that touch no labelled one.

    An alarm already on before the event (a run of alarming windows that began earlier) does not
    catch it: the operator saw nothing new (``already_alarming`` says when one was on). The delay
    runs from the event's first labelled sample to the end of the first window that raised an alarm
    overlapping it. ``step`` (default: the smallest gap between window ends) tells consecutive
    windows apart from a gap.
    """
    step = step or _smallest_step(windows)
    rises = alarm_rises(windows, alarms, step)
    starts = windows.ends - np.timedelta64(int(length.total_seconds()), "s")
    detail = [_one_event(event, windows, starts, alarms, rises) for event in windows.events]
    caught = [d for d in detail if d["caught"]]
    delays = [d["delay_minutes"] for d in caught]
    false_alarms = _false_alarm_runs(windows, alarms, rises, step)
    normal = windows.labels == 0
    months = float(normal.sum()) * (step / timedelta(days=30))
    return {
        "events": len(detail),
        "caught": len(caught),
        "already_alarming": sum(1 for d in detail if d["already_alarming"]),
        "cut_by_split": sum(1 for d in detail if d["cut_by_split"]),
        "event_recall": len(caught) / len(detail) if detail else float("nan"),
        "median_delay_minutes": float(np.median(delays)) if delays else float("nan"),
        "max_delay_minutes": float(np.max(delays)) if delays else float("nan"),
        "false_alarms": false_alarms,
        "normal_station_months": months,
        "false_alarms_per_station_month": false_alarms / months if months > 0 else float("nan"),
        "detail": detail,
    }


def _smallest_step(windows: WindowSet) -> timedelta:
    gaps = np.diff(windows.ends)
    gaps = gaps[gaps > np.timedelta64(0, "ns")]
    seconds = float(gaps.min() / np.timedelta64(1, "s")) if len(gaps) else 60.0
    return timedelta(seconds=seconds)


def _false_alarm_runs(
    windows: WindowSet, alarms: npt.NDArray[np.bool_], rises: npt.NDArray[np.bool_], step: timedelta
) -> int:
    """Alarm runs that touch no window with a labelled (or unknown) sample."""
    count = 0
    run_clean = False
    for i in range(len(alarms)):
        if rises[i]:
            if run_clean and i > 0:
                count += 1
            run_clean = bool(windows.labels[i] == 0)
        elif alarms[i]:
            run_clean = run_clean and bool(windows.labels[i] == 0)
        else:
            if run_clean:
                count += 1
            run_clean = False
    return count + int(run_clean)


def _one_event(
    event: Event,
    windows: WindowSet,
    starts: npt.NDArray[np.datetime64],
    alarms: npt.NDArray[np.bool_],
    rises: npt.NDArray[np.bool_],
) -> dict[str, Any]:
    mine = windows.station_ids == event.station_id
    overlapping = mine & (starts <= event.end) & (windows.ends > event.start)
    hits = np.flatnonzero(overlapping & rises)
    first_overlap = np.flatnonzero(overlapping)
    already = bool(len(first_overlap)) and bool(alarms[first_overlap[0]]) and not rises[first_overlap[0]]
    record: dict[str, Any] = {
        "station_id": event.station_id,
        "start": str(np.datetime_as_string(event.start, unit="s")) + "Z",
        "samples": int((event.end - event.start) // np.timedelta64(1, "m")) + 1,
        "cut_by_split": event.cut_by_split,
        "caught": bool(len(hits)),
        "already_alarming": already,
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
