"""Figures of the SKAB report: per-file scores against the threshold, and ours beside the leaderboard."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from evaluation.suites.skab_data import TRAIN_ROWS
from evaluation.suites.skab_detector import FileDetection
from trainer.report_templates import load_sections

# The labels, one file per language: templates/skab_plots.<lang>.md.
_PACKAGE = "evaluation.suites"


def _pyplot() -> object:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_file(detection: FileDetection, path: Path, lang: str) -> None:
    """Score, threshold, labelled anomaly (shaded) and alarms of one file."""
    plt = _pyplot()
    words = load_sections(_PACKAGE, "skab_plots", lang)
    rows = np.arange(detection.file.rows)
    figure, axis = plt.subplots(figsize=(10, 3.2))  # type: ignore[attr-defined]
    axis.semilogy(rows, np.maximum(detection.scores, 1e-3), lw=0.8, color="tab:blue", label=words["score"])
    axis.axhline(detection.threshold, color="tab:red", lw=1, ls="--", label=words["threshold"])
    axis.axvspan(0, TRAIN_ROWS, color="0.9", label=words["train"])
    axis.fill_between(
        rows,
        0,
        1,
        where=detection.file.anomaly == 1,
        color="tab:orange",
        alpha=0.25,
        transform=axis.get_xaxis_transform(),
        label=words["anomaly"],
    )
    axis.fill_between(
        rows,
        0,
        0.06,
        where=detection.alarms,
        color="tab:red",
        alpha=0.8,
        transform=axis.get_xaxis_transform(),
        label=words["alarm"],
    )
    axis.set_title(detection.file.name)
    axis.set_xlabel(words["row"])
    axis.set_ylabel(words["score"])
    axis.legend(loc="upper left", fontsize=7, ncol=5)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)  # type: ignore[attr-defined]


def plot_comparison(rows: Mapping[str, Mapping[str, float]], files: int, path: Path, lang: str) -> None:
    """Grouped bars: F1 (×100), FAR and MAR (%) for us and each published algorithm."""
    plt = _pyplot()
    words = load_sections(_PACKAGE, "skab_plots", lang)
    names: Sequence[str] = list(rows)
    positions = np.arange(len(names))
    width = 0.27
    figure, axis = plt.subplots(figsize=(11, 4))  # type: ignore[attr-defined]
    for offset, (key, label, scale) in enumerate(
        (("f1", "F1 ×100", 100.0), ("far", "FAR %", 1.0), ("mar", "MAR %", 1.0))
    ):
        values = [rows[name][key] * scale for name in names]
        axis.bar(positions + (offset - 1) * width, values, width, label=label)
    axis.set_xticks(
        positions, [words["ours"] if n == "ours" else n for n in names], rotation=30, ha="right", fontsize=8
    )
    axis.axhline(85, color="tab:blue", lw=0.6, ls=":")
    axis.axhline(15, color="tab:red", lw=0.6, ls=":")
    axis.set_title(words["bars"].format(n=files), fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)  # type: ignore[attr-defined]
