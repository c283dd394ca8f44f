"""The plots the original only had in its notebook, written as PNG files beside the report."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from trainer.data import UNKNOWN_LABEL
from trainer.line import LABEL, LineTraining, segment_balance
from trainer.pipeline import AUTOENCODER, RunResult

# Plot text in the report's language: each function asks ``_t`` (set by ``write_plots(lang=...)``).
_language: ContextVar[str] = ContextVar("plot_language", default="en")
_SPANISH = {
    "(scaled)": "(escalado)",
    "Autoencoder (test)": "Autocodificador (prueba)",
    "Autoencoder score over time (test)": "Puntuación del autocodificador en el tiempo (prueba)",
    "Autoencoder training": "Entrenamiento del autocodificador",
    "Data and chronological split (train | validation | test)": (
        "Datos y partición cronológica (entrenamiento | validación | prueba)"
    ),
    "MSE (scaled units)": "MSE (unidades escaladas)",
    "Precision-recall (test)": "Precisión-exhaustividad (prueba)",
    "ROC (test)": "ROC (prueba)",
    "Segment balance on the calibration period (hourly mean)": (
        "Balance de cada tramo en el periodo de calibración (media horaria)"
    ),
    "Test scores": "Puntuaciones de prueba",
    "Validation scores": "Puntuaciones de validación",
    "Worst test windows (scaled units)": "Peores ventanas de prueba (unidades escaladas)",
    "anomalous": "anómala",
    "anomaly": "anomalía",
    "epoch": "época",
    "false positive rate": "tasa de falsos positivos",
    "label unknown": "etiqueta desconocida",
    "labelled": "etiquetada",
    "labelled anomalous": "etiquetada anómala",
    "normal": "normal",
    "observed": "observada",
    "precision": "precisión",
    "predicted": "predicho",
    "recall": "exhaustividad",
    "reconstructed": "reconstruida",
    "score": "puntuación",
    "stations": "estaciones",
    "test": "prueba",
    "threshold": "umbral",
    "time (UTC)": "tiempo (UTC)",
    "true": "real",
    "true positive rate": "tasa de verdaderos positivos",
    "validation": "validación",
    "window end (UTC)": "fin de ventana (UTC)",
    "window score": "puntuación de ventana",
    "window score (one line per station)": "puntuación de ventana (una línea por estación)",
}


def _t(text: str) -> str:
    """``text`` in the language ``write_plots`` was asked for (English when no translation exists)."""
    return _SPANISH.get(text, text) if _language.get() == "es" else text


def _pyplot() -> Any:
    import matplotlib

    # Files only, no window: but a notebook's inline backend is kept, or every later figure of the
    # notebook would stop rendering.
    if "inline" not in matplotlib.get_backend():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(history: dict[str, list[float]], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, values in history.items():
        ax.plot(range(1, len(values) + 1), values, label=key)
    ax.set_xlabel(_t("epoch"))
    ax.set_ylabel(_t("MSE (scaled units)"))
    ax.set_title(_t("Autoencoder training"))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def error_distributions(
    scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int8], threshold: float, title: str, path: Path
) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.histogram_bin_edges(scores, bins=40)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, density=True, label=_t("normal"))
    if (labels == 1).any():
        ax.hist(scores[labels == 1], bins=bins, alpha=0.6, density=True, label=_t("anomalous"))
    ax.axvline(threshold, color="k", linestyle="--", label=_t("threshold"))
    ax.set_xlabel(_t("window score"))
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def roc_pr(curves: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.int8]]], path: Path) -> Path:
    """ROC and precision-recall curves of every model on the test split."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _pyplot()
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, (scores, labels) in curves.items():
        if len(np.unique(labels)) < 2:
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        precision, recall, _ = precision_recall_curve(labels, scores)
        roc_ax.plot(fpr, tpr, label=name)
        pr_ax.plot(recall, precision, label=name)
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_ax.set(xlabel=_t("false positive rate"), ylabel=_t("true positive rate"), title=_t("ROC (test)"))
    pr_ax.set(xlabel=_t("recall"), ylabel=_t("precision"), title=_t("Precision-recall (test)"))
    roc_ax.legend(fontsize=8)
    pr_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def confusion(matrix: list[list[int]], title: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    values = np.asarray(matrix)
    ax.imshow(values, cmap="Blues")
    for (i, j), count in np.ndenumerate(values):
        ax.text(j, i, str(count), ha="center", va="center", color="black")
    ax.set_xticks([0, 1], [_t("normal"), _t("anomaly")])
    ax.set_yticks([0, 1], [_t("normal"), _t("anomaly")])
    ax.set(xlabel=_t("predicted"), ylabel=_t("true"), title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def error_over_time(
    ends: npt.NDArray[np.datetime64],
    scores: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int8],
    threshold: float,
    path: Path,
    *,
    station_ids: npt.NDArray[np.str_] | None = None,
) -> Path:
    """Window scores against time, one line per station, broken where a station has a gap (a line
    drawn across stations or gaps would invent diagonals that are no data)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4))
    stations = np.full(len(ends), "", dtype=object) if station_ids is None else station_ids
    names = list(dict.fromkeys(stations.tolist()))
    for name in names:
        mine = np.flatnonzero(stations == name)
        mine = mine[np.argsort(ends[mine], kind="stable")]
        x, y = _broken_at_gaps(ends[mine], scores[mine])
        if len(names) == 1:
            label: str | None = _t("window score")
        elif len(names) <= 8:
            label = f"{_t('score')} {name}"
        else:  # a legend of dozens of stations says nothing
            label = _t("window score (one line per station)") if name == names[0] else None
        ax.plot(x, y, linewidth=0.8, label=label)
    hits = labels == 1
    ax.scatter(ends[hits], scores[hits], color="red", s=12, label=_t("labelled anomalous"), zorder=3)
    ax.axhline(threshold, color="k", linestyle="--", label=_t("threshold"))
    title = _t("Autoencoder score over time (test)")
    if len(names) > 1:
        title += f", {len(names)} " + _t("stations")
    ax.set(xlabel=_t("window end (UTC)"), ylabel=_t("score"), title=title)
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _broken_at_gaps(
    ends: npt.NDArray[np.datetime64], scores: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.float64]]:
    """``ends``/``scores`` with a NaN point inserted wherever the step exceeds 3 × the usual one."""
    if len(ends) < 3:
        return ends, scores
    steps = np.diff(ends).astype("timedelta64[s]").astype(np.float64)
    usual = float(np.median(steps))
    cuts = np.flatnonzero(steps > 3 * max(usual, 1.0)) + 1
    if not len(cuts):
        return ends, scores
    gap_ends = ends[cuts - 1] + (ends[cuts] - ends[cuts - 1]) // 2
    x = np.insert(ends, cuts, gap_ends)
    y = np.insert(scores.astype(np.float64), cuts, np.nan)
    return x, y


MAX_PLOTTED_STATIONS = 4
MAX_POINTS = 4000


def data_split(result: RunResult, path: Path) -> Path:
    """The data as trained on (each sensor scaled by its station's scaler), the split boundaries drawn
    on it and the labelled rows shaded: where train, validation and test fall in the history."""
    plt = _pyplot()
    stations = list(result.dataset.stations.items())[:MAX_PLOTTED_STATIONS]
    fig, axes = plt.subplots(len(stations), 1, figsize=(11, 2.6 * len(stations) + 0.6), squeeze=False)
    bounds = result.prepared.bounds
    for ax, (station, series) in zip(axes[:, 0], stations, strict=True):
        every = max(1, len(series) // MAX_POINTS)
        columns = [result.dataset.sensors.index(name) for name in result.prepared.sensors]
        scaled = result.prepared.scalers.for_station(station).transform(series.values[:, columns])
        for j, sensor in enumerate(result.prepared.sensors):
            ax.plot(series.ts[::every], scaled[::every, j], linewidth=0.6, label=sensor)
        for label, colour, alpha, text in (
            (1, "red", 0.2, "labelled"),
            (UNKNOWN_LABEL, "grey", 0.15, "label unknown"),
        ):
            shaded = series.labels == label
            if shaded.any():
                ax.fill_between(
                    series.ts,
                    0,
                    1,
                    where=shaded,
                    color=colour,
                    alpha=alpha,
                    transform=ax.get_xaxis_transform(),
                    label=_t(text),
                )
        for when, name in ((bounds.validation_start, "validation"), (bounds.test_start, "test")):
            ax.axvline(when, color="k", linestyle="--", linewidth=1)
            ax.text(when, 1.0, f" {_t(name)} →", transform=ax.get_xaxis_transform(), va="bottom", fontsize=8)
        ax.set_ylabel(f"{station}\n{_t('(scaled)')}")
    axes[0, 0].legend(loc="upper left", fontsize=7, ncol=min(6, len(result.prepared.sensors) + 1))
    axes[-1, 0].set_xlabel(_t("time (UTC)"))
    fig.suptitle(_t("Data and chronological split (train | validation | test)"))
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def worst_reconstructions(
    x: npt.NDArray[np.float32],
    x_hat: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float64],
    sensors: tuple[str, ...],
    path: Path,
    *,
    count: int = 3,
) -> Path:
    """The highest-scoring test windows, each sensor as observed and as reconstructed."""
    plt = _pyplot()
    worst = np.argsort(scores)[::-1][:count]
    fig, axes = plt.subplots(
        len(worst), len(sensors), figsize=(2.4 * len(sensors), 2.0 * len(worst)), squeeze=False
    )
    for row, index in enumerate(worst):
        for col, sensor in enumerate(sensors):
            ax = axes[row][col]
            ax.plot(x[index, :, col], label=_t("observed"))
            ax.plot(x_hat[index, :, col], label=_t("reconstructed"))
            if row == 0:
                ax.set_title(sensor, fontsize=9)
            ax.tick_params(labelsize=7)
        axes[row][0].set_ylabel(f"{_t('score')} {scores[index]:.2f}", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(_t("Worst test windows (scaled units)"))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def line_balances(line: LineTraining, path: Path) -> Path:
    """Each segment's level-compensated balance over the rows it was calibrated on, one panel each
    (hourly means of the normal minutes; labelled rows left out as in the calibration)."""
    plt = _pyplot()
    segments = line.topology.segments
    normal = line.frame[line.frame[LABEL] == 0]
    fig, axes = plt.subplots(
        len(segments), 1, figsize=(8, 2.2 * len(segments) + 0.6), sharex=True, squeeze=False
    )
    for ax, segment in zip(axes[:, 0], segments, strict=True):
        balance = segment_balance(normal, segment)
        hourly = balance.resample("1h").mean()
        ax.plot(hourly.index, hourly.to_numpy(), linewidth=0.8)
        ax.axhline(0.0, color="k", linewidth=0.5)
        ax.set_ylabel("m³/h")
        ax.set_title(f"{segment.segment_id} ({segment.length_km:g} km)", fontsize=9)
    axes[-1, 0].set_xlabel(_t("time (UTC)"))
    fig.suptitle(_t("Segment balance on the calibration period (hourly mean)"))
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_plots(result: RunResult, out: Path, lang: str = "en") -> list[Path]:
    """Every plot of the run into ``out`` (created), labelled in ``lang``; returns the files."""
    token = _language.set(lang)
    try:
        return _write_plots(result, out)
    finally:
        _language.reset(token)


def _write_plots(result: RunResult, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    ae = result.models[AUTOENCODER]
    test = result.prepared["test"]
    validation = result.prepared["validation"]
    threshold = ae.calibration.threshold
    paths = [
        data_split(result, out / "data_split.png"),
        training_curves(result.trained.history, out / "training_curves.png"),
        error_distributions(
            ae.scores["validation"],
            validation.labels,
            threshold,
            _t("Validation scores"),
            out / "errors_validation.png",
        ),
        error_distributions(
            ae.scores["test"], test.labels, threshold, _t("Test scores"), out / "errors_test.png"
        ),
        roc_pr(
            {
                name: (model.scores["test"][test.known], test.labels[test.known])
                for name, model in result.models.items()
            },
            out / "roc_pr.png",
        ),
        confusion(ae.test["confusion_matrix"], _t("Autoencoder (test)"), out / "confusion_matrix.png"),
        error_over_time(
            test.ends,
            ae.scores["test"],
            test.labels,
            threshold,
            out / "error_over_time.png",
            station_ids=test.station_ids,
        ),
        worst_reconstructions(
            test.x,
            result.reconstructions["test"],
            ae.scores["test"],
            result.prepared.sensors,
            out / "worst_windows.png",
        ),
    ]
    if result.line is not None and result.line.topology.segments:
        paths.append(line_balances(result.line, out / "line_balance.png"))
    return paths
