"""The run's report: ``report.json`` for tools, ``report.md`` for people (English or Spanish)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import ConfigError
from trainer.line import line_report
from trainer.metrics import METRIC_KEYS
from trainer.pipeline import UNSUPERVISED, RunResult

LANGUAGES = ("en", "es")

# The data set the original pipeline published figures for: they are quoted only for it.
ORIGINAL_DATA_FILE = "rebombeo_huachicoleo.csv"
# Original pipeline's published figures on the seed data set (its README and notebook runs).
ORIGINAL_FIGURES = {
    "autoencoder": {"f1": "0.72 ± 0.04", "average_precision": "0.86", "roc_auc": "0.90"},
    "isolation_forest": {"f1": "0.00"},
    "local_outlier_factor": {"f1": "0.68"},
}

_TEXT: dict[str, dict[str, str]] = {
    "title": {"en": "Centinela training report", "es": "Reporte de entrenamiento de Centinela"},
    "data": {"en": "Data", "es": "Datos"},
    "split": {"en": "Chronological split", "es": "División cronológica"},
    "split_bounds": {
        "en": "Validation from {validation}, test from {test} (every station cut at the same instants; "
        "drawn on the data in plots/data_split.png).",
        "es": "Validación desde {validation}, prueba desde {test} (todas las estaciones cortadas en los "
        "mismos instantes; dibujado sobre los datos en plots/data_split.png).",
    },
    "quality": {"en": "Data as read", "es": "Datos leídos"},
    "quality_counts": {
        "en": "{empty} empty sensor cells (gaps, handled by the service's windowing rules); {unknown} rows "
        "with an unknown label (left out of metrics and thresholds).",
        "es": "{empty} celdas de sensor vacías (huecos, tratados con las reglas de ventanas del servicio); "
        "{unknown} filas con etiqueta desconocida (fuera de métricas y umbrales).",
    },
    "models": {
        "en": "Test metrics (threshold chosen on validation)",
        "es": "Métricas en prueba (umbral elegido en validación)",
    },
    "model": {"en": "model", "es": "modelo"},
    "mode": {"en": "mode", "es": "modo"},
    "unsupervised": {
        "en": "unsupervised (normal windows only)",
        "es": "no supervisado (solo ventanas normales)",
    },
    "labels": {"en": "labels (training split only)", "es": "etiquetas (solo tramo de entrenamiento)"},
    "calibration": {"en": "Threshold calibration", "es": "Calibración del umbral"},
    "strategies": {
        "en": "Strategies compared (same thresholds on each split)",
        "es": "Estrategias comparadas (mismos umbrales en cada tramo)",
    },
    "aggregation": {
        "en": "Score aggregation chosen on validation",
        "es": "Agregación del puntaje elegida en validación",
    },
    "events": {"en": "Event level (test)", "es": "Nivel de evento (prueba)"},
    "training": {"en": "Training", "es": "Entrenamiento"},
    "plots": {"en": "Plots", "es": "Gráficas"},
    "original": {"en": "Original pipeline (published)", "es": "Pipeline original (publicado)"},
    "rows": {"en": "rows", "es": "filas"},
    "sensors": {"en": "sensors", "es": "sensores"},
    "walk_forward": {
        "en": "Walk-forward ({folds} folds, test, mean ± sd)",
        "es": "Validación walk-forward ({folds} pliegues, prueba, media ± de)",
    },
    "stations": {"en": "stations", "es": "estaciones"},
    "event_count": {"en": "events", "es": "eventos"},
    "windows": {"en": "windows", "es": "ventanas"},
    "anomalous": {"en": "anomalous", "es": "anómalas"},
    "split_name": {"en": "split", "es": "tramo"},
    "strategy": {"en": "strategy", "es": "estrategia"},
    "threshold": {"en": "threshold", "es": "umbral"},
    "chosen": {"en": "chosen", "es": "elegido"},
    "caught": {"en": "caught", "es": "detectados"},
    "already": {"en": "alarm already on", "es": "alarma ya activa"},
    "cut": {"en": "cut by a split", "es": "cortados por un tramo"},
    "false_alarms": {"en": "false alarms", "es": "falsas alarmas"},
    "per_month": {"en": "per station-month", "es": "por estación-mes"},
    "events_note": {
        "en": "An event is caught only by an alarm raised in a window that overlaps it; an alarm already "
        "on before it does not count (*alarm already on*). False alarms: alarms raised on normal windows "
        "that touch no labelled one, per station-month of normal test windows. *Cut by a split*: events "
        "whose labelled rows continue into the neighbouring split.",
        "es": "Un evento se detecta solo con una alarma que se levanta en una ventana que lo solapa; una "
        "alarma ya activa antes no cuenta (*alarma ya activa*). Falsas alarmas: alarmas levantadas en "
        "ventanas normales que no tocan ninguna etiquetada, por estación-mes de ventanas normales de "
        "prueba. *Cortados por un tramo*: eventos cuyas filas etiquetadas siguen en el tramo vecino.",
    },
    "delay": {"en": "median delay (min)", "es": "retraso mediano (min)"},
    "train": {"en": "train", "es": "entrenamiento"},
    "validation": {"en": "validation", "es": "validación"},
    "test": {"en": "test", "es": "prueba"},
    "epochs": {"en": "epochs run (best)", "es": "épocas (mejor)"},
    "seconds": {"en": "training seconds", "es": "segundos de entrenamiento"},
    "bundle": {"en": "Bundle", "es": "Paquete del modelo"},
    "confusion": {
        "en": "Confusion matrix (test, rows = truth)",
        "es": "Matriz de confusión (prueba, filas = verdad)",
    },
    "note_modes": {
        "en": "Every number says which mode produced it: `unsupervised` models never saw a label "
        "except to choose the threshold on validation; `labels` learned the anomalies' signature "
        "from the training split.",
        "es": "Cada cifra indica el modo que la produjo: los modelos `no supervisados` no vieron "
        "etiquetas salvo para elegir el umbral en validación; `etiquetas` aprendió la firma de las "
        "anomalías del tramo de entrenamiento.",
    },
    "line": {"en": "Line: segment calibration", "es": "Línea: calibración por tramo"},
    "operating_point": {"en": "Operating point", "es": "Punto de operación"},
    "budget_note": {
        "en": "Threshold set to at most {budget:g} false alarm(s) per station-month on {windows} normal "
        "validation and holdout windows ({months:.3f} station-months; rule: {rule}; {alarms} alarm(s) "
        "there at the threshold).",
        "es": "Umbral fijado para a lo sumo {budget:g} falsa(s) alarma(s) por estación-mes en {windows} "
        "ventanas normales de validación y reserva ({months:.3f} estaciones-mes; regla: {rule}; "
        "{alarms} alarma(s) allí con el umbral).",
    },
    "op_check": {
        "en": "Check on the test split's normal windows (never fitted): {alarming} of {windows} "
        "({share:.1f} %) at or above the threshold, {alarms} alarm(s), {rate} per station-month; "
        "allowed share {max_share:g} %.",
        "es": "Verificación en las ventanas normales de prueba (nunca ajustadas): {alarming} de "
        "{windows} ({share:.1f} %) en o sobre el umbral, {alarms} alarma(s), {rate} por estación-mes; "
        "proporción permitida {max_share:g} %.",
    },
    "per_station_thresholds": {
        "en": "Each station's own budget threshold (the bundle serves the pooled one above): ",
        "es": "Umbral de presupuesto propio de cada estación (el paquete usa el común de arriba): ",
    },
    "op_unchecked": {
        "en": "Not checked: the test split holds no normal window.",
        "es": "Sin verificar: el tramo de prueba no tiene ventanas normales.",
    },
    "op_rejected": {
        "en": "REJECTED: too many normal windows alarm; the bundle is marked "
        "(training.operating_point.accepted = false).",
        "es": "RECHAZADO: demasiadas ventanas normales alarman; el paquete queda marcado "
        "(training.operating_point.accepted = false).",
    },
    "line_note": {
        "en": "Each segment's tap test (flow missing between its two stations) was calibrated on the "
        "{splits} periods ({start} to {end}, {rows} rows, {excluded} labelled rows left out) to at most "
        "{budget:g} false alarm(s) per segment-month. Topology: `{topology}`.",
        "es": "La prueba de toma clandestina de cada tramo (flujo que falta entre sus dos estaciones) se "
        "calibró en los periodos de {splits} ({start} a {end}, {rows} filas, {excluded} filas "
        "etiquetadas excluidas) para a lo sumo {budget:g} falsa(s) alarma(s) por tramo-mes. "
        "Topología: `{topology}`.",
    },
    "segment": {"en": "segment", "es": "tramo"},
    "field": {"en": "figure", "es": "cifra"},
    "balance_note": {
        "en": "*balance*: flow[up] − flow[down] − A·d(level[down])/dt on the normal rows calibrated on "
        "(m³/h; no line pack), mean ± sd.",
        "es": "*balance*: flujo[aguas arriba] − flujo[aguas abajo] − A·d(nivel[aguas abajo])/dt en las "
        "filas normales de calibración (m³/h; sin empaque de línea), media ± de.",
    },
    "and": {"en": "training and validation", "es": "entrenamiento y validación"},
    "best_possible_f1": {"en": "best F1 (any threshold)", "es": "mejor F1 (cualquier umbral)"},
    "note_best_possible": {
        "en": "*Best F1 (any threshold)* is the F1 of the threshold that would have been best on these "
        "test windows: how much the calibrated threshold, chosen on validation, left on the table. It "
        "is context only and chooses nothing.",
        "es": "*Mejor F1 (cualquier umbral)* es el F1 del umbral que habría sido el mejor en estas "
        "ventanas de prueba: cuánto dejó en la mesa el umbral calibrado en validación. Es solo "
        "contexto y no elige nada.",
    },
}


def _t(key: str, lang: str) -> str:
    return _TEXT[key][lang]


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN to null."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_report(result: RunResult, bundle_path: Path | None = None) -> dict[str, Any]:
    ae = result.autoencoder
    calibration = ae.calibration.to_dict()
    calibration["test"] = [{**c.to_dict(), "split": "test"} for c in ae.test_strategies]
    for row in calibration["strategies"]:
        row["split"] = "validation"
    calibration["aggregation"] = result.aggregation
    report = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": str(result.options.data),
        "sensors": list(result.prepared.sensors),
        "stations": list(result.dataset.stations),
        "mode": "labels" if result.options.use_labels else UNSUPERVISED,
        "split": {name: ws.summary() for name, ws in result.prepared.splits.items()},
        "split_bounds": {
            "validation_start": str(result.prepared.bounds.validation_start) + "Z",
            "test_start": str(result.prepared.bounds.test_start) + "Z",
        },
        "window": {
            "samples": result.prepared.spec.samples_per_window,
            "step": result.prepared.spec.step_slots,
            "given": {"window": str(result.options.window), "step": str(result.options.step)},
            **result.prepared.spec.to_seconds(),
        },
        "data_quality": {
            "rows": result.dataset.n_rows,
            "empty_sensor_cells": result.dataset.n_missing_cells,
            "unknown_label_rows": result.dataset.n_unknown,
            "dropped_sensors": result.prepared.dropped_sensors,
            "notes": result.prepared.notes,
        },
        "models": {name: model.summary() for name, model in result.models.items()},
        "calibration": calibration,
        "aggregation_selection": result.aggregation_selection,
        "events": {name: model.events for name, model in result.models.items()},
        "training": {
            "epochs_run": result.trained.epochs_run,
            "best_epoch": result.trained.best_epoch,
            "history": result.trained.history,
            "seconds": result.seconds,
        },
        "options": result.options.to_dict(),
        # Published for the seed data set only; any other data would make them a false comparison.
        "original_pipeline": ORIGINAL_FIGURES
        if Path(result.options.data).name == ORIGINAL_DATA_FILE
        else None,
        "operating_point": None if result.operating_point is None else result.operating_point.to_dict(),
        "bundle": str(bundle_path) if bundle_path else None,
    }
    if result.line is not None:
        report["line"] = line_report(result.line, result.options.topology_source)
    if result.label_head is not None:
        report["label_head_coefficients"] = result.label_head.describe(result.prepared.sensors)
    cleaned: dict[str, Any] = _clean(report)
    return cleaned


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render_markdown(report: dict[str, Any], lang: str = "en", plots: list[str] | None = None) -> str:
    """The human report; ``lang`` ``es`` renders it in Spanish."""
    if lang not in LANGUAGES:
        raise ConfigError(f"--lang must be one of {', '.join(LANGUAGES)}, got {lang!r}")

    def t(key: str) -> str:
        return _t(key, lang)

    lines = [
        f"# {t('title')}",
        "",
        f"{t('data')}: `{report['data']}` — {t('sensors')}: {', '.join(report['sensors'])}; "
        f"{t('stations')}: {', '.join(report['stations'])}",
        "",
    ]
    quality = report.get("data_quality") or {}
    if quality.get("notes") or quality.get("empty_sensor_cells") or quality.get("unknown_label_rows"):
        lines += [f"## {t('quality')}", ""]
        lines.append(
            t("quality_counts").format(
                empty=quality.get("empty_sensor_cells", 0), unknown=quality.get("unknown_label_rows", 0)
            )
        )
        lines += ["", *(f"- {note}" for note in quality.get("notes", [])), ""]
    bounds = report.get("split_bounds", {})
    lines += [
        f"## {t('split')}",
        "",
        t("split_bounds").format(validation=bounds.get("validation_start"), test=bounds.get("test_start")),
        "",
        f"| {t('split_name')} | {t('rows')} | {t('windows')} | {t('anomalous')} |",
        "|---|---:|---:|---:|",
    ]
    for name, split in report["split"].items():
        lines.append(f"| {t(name)} | {split['rows']} | {split['windows']} | {split['anomalous_windows']} |")
    lines += [
        "",
        f"## {t('models')}",
        "",
        t("note_modes"),
        "",
        t("note_best_possible"),
        "",
        f"| {t('model')} | {t('mode')} | precision | recall | F1 | ROC-AUC | AP | {t('threshold')} "
        f"| {t('best_possible_f1')} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, model in report["models"].items():
        mode = t(model["mode"])
        agg = f" ({model['aggregation']})" if model.get("aggregation") else ""
        lines.append(
            f"| {name}{agg} | {mode} | "
            + " | ".join(_fmt(model[k]) for k in METRIC_KEYS)
            + f" | {_fmt(model['threshold'])} | {_fmt(model.get('best_possible_f1'))} |"
        )
    lines.append("")
    if report.get("original_pipeline"):
        lines += [
            f"{t('original')}: "
            + "; ".join(
                f"{name} " + ", ".join(f"{k} {v}" for k, v in figures.items())
                for name, figures in report["original_pipeline"].items()
            ),
            "",
        ]
    if report.get("operating_point"):
        lines += [*_render_operating_point(report["operating_point"], report["calibration"], t), ""]
    ae = report["models"]["autoencoder"]
    matrix = ae["confusion_matrix"]
    lines += [
        f"### {t('confusion')} — autoencoder",
        "",
        "| | 0 | 1 |",
        "|---|---:|---:|",
        f"| 0 | {matrix[0][0]} | {matrix[0][1]} |",
        f"| 1 | {matrix[1][0]} | {matrix[1][1]} |",
        "",
    ]
    lines += [
        f"## {t('events')}",
        "",
        t("events_note"),
        "",
        f"| {t('model')} | {t('event_count')} | {t('caught')} | {t('already')} | {t('cut')} | {t('delay')} "
        f"| {t('false_alarms')} | {t('per_month')} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, model in report["models"].items():
        ev = model["events"]
        lines.append(
            f"| {name} | {ev['events']} | {ev['caught']} | {ev.get('already_alarming', 0)} "
            f"| {ev.get('cut_by_split', 0)} | {_fmt(ev['median_delay_minutes'])} "
            f"| {ev.get('false_alarms', '—')} "
            f"| {_fmt(ev.get('false_alarms_per_station_month'))} |"
        )
    if report.get("aggregation_selection"):
        lines += [
            "",
            f"## {t('aggregation')}",
            "",
            "| aggregation | validation F1 | validation AP |",
            "|---|---:|---:|",
        ]
        for agg, row in report["aggregation_selection"].items():
            mark = " ←" if agg == report["calibration"]["aggregation"] else ""
            f1, ap = _fmt(row["validation_f1"]), _fmt(row["validation_average_precision"])
            lines.append(f"| {agg}{mark} | {f1} | {ap} |")
    cal = report["calibration"]
    lines += [
        "",
        f"## {t('calibration')}",
        "",
        f"{t('chosen')}: `{cal['method']}` — {t('threshold')} {_fmt(cal['threshold'])}"
        + (f" (p{cal['percentile']:g})" if cal.get("percentile") is not None else ""),
        "",
        f"### {t('strategies')}",
        "",
        f"| {t('strategy')} | {t('threshold')} | {t('split_name')} | precision | recall | F1 |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for val_row, test_row in zip(cal["strategies"], cal["test"], strict=True):
        for row in (val_row, test_row):
            lines.append(
                f"| {row['strategy']} | {_fmt(row['threshold'])} | {t(row['split'])} | "
                f"{_fmt(row['precision'])} | {_fmt(row['recall'])} | {_fmt(row['f1'])} |"
            )
    tr = report["training"]
    lines += [
        "",
        f"## {t('training')}",
        "",
        f"- {t('epochs')}: {tr['epochs_run']} ({tr['best_epoch']})",
        f"- {t('seconds')}: {_fmt(tr['seconds'].get('train'))}",
    ]
    if report.get("line"):
        lines += ["", *_render_line(report["line"], t)]
    if report.get("walk_forward"):
        from trainer.walk_forward import render_walk_forward

        folds = len(report["walk_forward"]["folds"])
        lines += ["", "## " + t("walk_forward").format(folds=folds), ""]
        lines.append(render_walk_forward(report["walk_forward"]).rstrip())
    if report.get("bundle"):
        lines += ["", f"## {t('bundle')}", "", f"`{report['bundle']}`"]
    if plots:
        lines += ["", f"## {t('plots')}", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _render_operating_point(check: dict[str, Any], cal: dict[str, Any], t: Any) -> list[str]:
    """The threshold's budget (when it set it) and its check on the normal test windows."""
    out = [f"## {t('operating_point')}", ""]
    budget = cal.get("false_alarm_budget")
    if budget:
        out.append(
            t("budget_note").format(
                budget=budget["budget_per_station_month"],
                windows=budget["normal_windows"],
                months=budget["station_months"],
                rule=budget["rule"],
                alarms=budget["alarms_at_threshold"],
            )
        )
        if budget.get("per_station_thresholds"):
            out.append(
                t("per_station_thresholds")
                + ", ".join(f"{name} {value:.3g}" for name, value in budget["per_station_thresholds"].items())
            )
        out.append("")
    if not check["checked"]:
        out.append(t("op_unchecked"))
        return out
    rate = check.get("alarms_per_station_month")
    out.append(
        t("op_check").format(
            alarming=check["alarming_windows"],
            windows=check["normal_windows"],
            share=100 * check["share"],
            alarms=check["alarms"],
            rate="—" if rate is None else f"{rate:.2f}",
            max_share=100 * check["max_share"],
        )
    )
    if not check["acceptable"]:
        out += ["", f"**{t('op_rejected')}**"]
    return out


def _render_line(line: dict[str, Any], t: Any) -> list[str]:
    """The ``line`` section: the budget, the rows calibrated on, each segment's figures."""
    on = line["calibrated_on"]
    out = [
        f"## {t('line')}",
        "",
        t("line_note").format(
            splits=t("and"),
            start=on["start"],
            end=on["end"],
            rows=on["rows"],
            excluded=on["excluded_labelled_rows"],
            budget=line["budget_per_segment_month"],
            topology=line["topology"],
        ),
        "",
    ]
    # Whatever scalar fields the calibration has (SegmentCalibration.to_dict and its ``extra``), one
    # row each, a column per segment; lists (per-window spreads, pressure model) stay in report.json.
    segments = line["segments"]

    def scalars(seg: dict[str, Any]) -> dict[str, Any]:
        cal = seg["calibration"]
        flat = {k: v for k, v in cal.items() if k != "segment_id" and not isinstance(v, dict | list)}
        flat.update(
            {f"extra.{k}": v for k, v in cal.get("extra", {}).items() if not isinstance(v, dict | list)}
        )
        return flat

    table = {name: scalars(seg) for name, seg in segments.items()}
    fields = sorted({k for row in table.values() for k in row})
    out += ["| " + " | ".join([t("field"), *segments]) + " |", "|---|" + "---:|" * len(segments)]
    out.append("| km | " + " | ".join(_fmt(seg["length_km"]) for seg in segments.values()) + " |")
    for key in fields:
        out.append(f"| {key} | " + " | ".join(_fmt(table[name].get(key)) for name in segments) + " |")
    out.append(
        "| balance (m³/h) | "
        + " | ".join(
            f"{_fmt(seg['training_balance']['mean_m3h'])} ± {_fmt(seg['training_balance']['std_m3h'])}"
            for seg in segments.values()
        )
        + " |"
    )
    out += ["", t("balance_note")]
    return out


def write_reports(
    report: dict[str, Any], out: Path, lang: str = "en", plots: list[str] | None = None
) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    md_path = out / "report.md"
    md_path.write_text(render_markdown(report, lang, plots), encoding="utf-8")
    return json_path, md_path


_CARD: dict[str, dict[str, str]] = {
    "en": {
        "title": "# Model card — Centinela LSTM autoencoder",
        "data": "## Data",
        "source": "- Source: `{data}`; stations: {stations}; sensors: {sensors}.",
        "split": "- Chronological split: train {train} rows, validation {validation}, test {test} "
        "(validation starts {validation_start}, test {test_start}).",
        "windows": "- Windows: {samples} samples ({length}), a new one every {step}; a window is anomalous "
        "if any sample is labelled.",
        "assumes": "## What the model assumes",
        "assume_normal": "- Trained on normal training windows only; per-station scalers fitted on normal "
        "training rows.",
        "assume_regime": "- Normal is what the training period looked like: a new operating regime (new "
        "pump, new setpoint, seasonal demand) will score high until the model is retrained.",
        "score": "- Score: reconstruction error aggregated with `{aggregation}` over the window, in scaled "
        "units (see `detector.scoring.reconstruction_errors`).",
        "calibration": "## Calibration",
        "method": "- Method `{method}` on the validation split: threshold {threshold:.4f} (validation F1 "
        "{f1:.3f}; {windows} windows, {normal} normal)",
        "extra": "; false alarms also counted on {count} normal windows from the {source}.",
        "test": "- Test, never used to choose anything ({mode}): precision {precision}, recall {recall}, "
        "F1 {f1}, ROC-AUC {roc_auc}, AP {ap}.",
        "strategies": "- The strategy comparison on validation and test is in `manifest.json`, "
        "`calibration`.",
        "limits": "## Known limits",
        "limit_few": "- Labelled anomalies are few; F1 on a few hundred windows moves by several points when "
        "one event is missed. `centinela train --walk-forward K` shows the spread over periods.",
        "limit_inside": "- An anomaly that keeps every sensor inside its normal range is invisible to a "
        "distance-from-normal detector; only labels (`--use-labels`) can teach its direction.",
        "limit_unseen": "- Stations never seen in training are scaled with the pooled fallback scaler: "
        "expect more false alarms there until they are in the training data.",
        "recalibrate": "## Recalibrate when",
        "re_drift": "- the false-alarm rate on confirmed-normal periods drifts above what validation "
        "predicted;",
        "re_change": "- equipment, setpoints or sensors change;",
        "re_months": "- every few months with newly confirmed labels: rerun `centinela train` on recent "
        "history and compare the new report with this one before deploying the new bundle.",
        "training_period": "training period",
        "op_unchecked": "- Operating point not checked: the test split held no normal window.",
        "op_accepted": "accepted",
        "op_rejected": "**REJECTED** (bundle marked `operating_point.accepted = false`)",
        "op_check": "- Operating point {verdict}: {alarming} of {normal} normal test windows ({share:.1f} %, "
        "allowed {allowed:g} %) at or above the threshold, {alarms} alarm(s).",
        "line_title": "## Line (segment tap detection)",
        "line_segment": "{name} ({km:g} km, limit {limit})",
        "line_topology": "- Topology `{topology}`: line(s) {lines}; stations {stations}; segments "
        "{segments}.",
        "line_calibrated": "- Each segment's sequential test on the level-compensated flow balance was "
        "calibrated on the training and validation periods ({start} to {end}, {rows} rows, {excluded} "
        "labelled rows left out) to {budget:g} false alarm(s) per segment-month; figures in "
        "`manifest.json`, `line.calibration`.",
        "line_topology_change": "- The bundle's topology is the one the service balances with: a change of "
        "stations, tank areas,\n  meters or pipe (length, diameter) needs a new topology file and a "
        "retrained bundle.",
        "line_meters": "- Recalibrate the segments when a flow or level meter is replaced or recalibrated: "
        "its offset\n  is part of the segment's learned bias.",
    },
    "es": {
        "title": "# Ficha del modelo — autocodificador LSTM de Centinela",
        "data": "## Datos",
        "source": "- Origen: `{data}`; estaciones: {stations}; sensores: {sensors}.",
        "split": "- Partición cronológica: entrenamiento {train} filas, validación {validation}, prueba "
        "{test} (la validación empieza {validation_start}, la prueba {test_start}).",
        "windows": "- Ventanas: {samples} muestras ({length}), una nueva cada {step}; una ventana es "
        "anómala si alguna muestra está etiquetada.",
        "assumes": "## Qué supone el modelo",
        "assume_normal": "- Entrenado solo con ventanas normales de entrenamiento; escaladores por estación "
        "ajustados con filas normales de entrenamiento.",
        "assume_regime": "- Lo normal es lo que mostró el periodo de entrenamiento: un régimen nuevo (bomba "
        "nueva, nueva consigna, demanda estacional) puntuará alto hasta reentrenar el modelo.",
        "score": "- Puntuación: error de reconstrucción agregado con `{aggregation}` sobre la ventana, en "
        "unidades escaladas (ver `detector.scoring.reconstruction_errors`).",
        "calibration": "## Calibración",
        "method": "- Método `{method}` en la partición de validación: umbral {threshold:.4f} (F1 de "
        "validación {f1:.3f}; {windows} ventanas, {normal} normales)",
        "extra": "; las falsas alarmas se cuentan también en {count} ventanas normales del {source}.",
        "test": "- Prueba, nunca usada para elegir nada ({mode}): precisión {precision}, exhaustividad "
        "{recall}, F1 {f1}, ROC-AUC {roc_auc}, AP {ap}.",
        "strategies": "- La comparación de estrategias en validación y prueba está en `manifest.json`, "
        "`calibration`.",
        "limits": "## Límites conocidos",
        "limit_few": "- Hay pocas anomalías etiquetadas; el F1 sobre unos cientos de ventanas se mueve "
        "varios puntos cuando se pierde un evento. `centinela train --walk-forward K` muestra la dispersión "
        "entre periodos.",
        "limit_inside": "- Una anomalía que deja cada sensor dentro de su rango normal es invisible para un "
        "detector de distancia a lo normal; solo las etiquetas (`--use-labels`) pueden enseñarle su "
        "dirección.",
        "limit_unseen": "- Las estaciones no vistas en el entrenamiento se escalan con el escalador común: "
        "espere más falsas alarmas allí hasta incluirlas en los datos de entrenamiento.",
        "recalibrate": "## Recalibrar cuando",
        "re_drift": "- la tasa de falsas alarmas en periodos confirmados como normales supere lo que predijo "
        "la validación;",
        "re_change": "- cambien equipos, consignas o sensores;",
        "re_months": "- cada pocos meses con nuevas etiquetas confirmadas: vuelva a ejecutar `centinela "
        "train` con la historia reciente y compare el nuevo informe con este antes de desplegar el "
        "nuevo bundle.",
        "training_period": "periodo de entrenamiento",
        "op_unchecked": "- Punto de operación sin comprobar: la partición de prueba no tenía ninguna ventana "
        "normal.",
        "op_accepted": "aceptado",
        "op_rejected": "**RECHAZADO** (bundle marcado `operating_point.accepted = false`)",
        "op_check": "- Punto de operación {verdict}: {alarming} de {normal} ventanas normales de prueba "
        "({share:.1f} %, permitido {allowed:g} %) en el umbral o por encima, {alarms} alarma(s).",
        "line_title": "## Línea (detección de tomas por tramo)",
        "line_segment": "{name} ({km:g} km, límite {limit})",
        "line_topology": "- Topología `{topology}`: línea(s) {lines}; estaciones {stations}; tramos "
        "{segments}.",
        "line_calibrated": "- La prueba secuencial de cada tramo sobre el balance de caudal compensado por "
        "nivel se calibró en los periodos de entrenamiento y validación ({start} a {end}, {rows} filas, "
        "{excluded} filas etiquetadas excluidas) a {budget:g} falsa(s) alarma(s) por tramo y mes; cifras "
        "en `manifest.json`, `line.calibration`.",
        "line_topology_change": "- La topología del bundle es la que el servicio usa para el balance: un "
        "cambio de estaciones, áreas de tanque,\n  medidores o tubería (longitud, diámetro) requiere un "
        "archivo de topología nuevo y reentrenar el bundle.",
        "line_meters": "- Recalibre los tramos cuando se reemplace o recalibre un medidor de caudal o de "
        "nivel: su desvío\n  forma parte del sesgo aprendido del tramo.",
    },
}


def model_card(report: dict[str, Any], lang: str = "en") -> str:
    """MODEL_CARD.md in ``lang``: data, assumptions, calibration, the operating-point check, the line
    section (with a topology), limits, and when to recalibrate; every line in ``lang``."""
    t = _CARD.get(lang, _CARD["en"])
    ae = report["models"]["autoencoder"]
    cal = report["calibration"]
    split = report["split"]
    bounds = report["split_bounds"]
    window = report["window"]
    validation = cal["validation"]
    extra = (
        t["extra"].format(
            count=cal["extra_normal_windows"], source=cal.get("extra_normal_source", t["training_period"])
        )
        if cal.get("extra_normal_windows")
        else "."
    )
    lines = [
        t["title"],
        "",
        t["data"],
        t["source"].format(
            data=report["data"], stations=", ".join(report["stations"]), sensors=", ".join(report["sensors"])
        ),
        t["split"].format(
            train=split["train"]["rows"],
            validation=split["validation"]["rows"],
            test=split["test"]["rows"],
            validation_start=bounds["validation_start"],
            test_start=bounds["test_start"],
        ),
        t["windows"].format(
            samples=window["samples"],
            length=_minutes(window.get("length")),
            step=_minutes(window.get("step")),
        ),
        "",
        t["assumes"],
        t["assume_normal"],
        t["assume_regime"],
        t["score"].format(aggregation=cal["aggregation"]),
        "",
        t["calibration"],
        t["method"].format(
            method=cal["method"],
            threshold=ae["threshold"],
            f1=validation["f1"],
            windows=cal["validation_windows"],
            normal=cal["validation_normal_windows"],
        )
        + extra,
        # Metrics are None when the test split holds no anomaly (ROC-AUC, AP undefined).
        t["test"].format(
            mode=ae["mode"],
            precision=_fmt(ae["precision"]),
            recall=_fmt(ae["recall"]),
            f1=_fmt(ae["f1"]),
            roc_auc=_fmt(ae["roc_auc"]),
            ap=_fmt(ae["average_precision"]),
        ),
        t["strategies"],
        *_card_operating_point(report.get("operating_point"), lang),
        "",
        t["limits"],
        t["limit_few"],
        t["limit_inside"],
        t["limit_unseen"],
        "",
        *_card_line(report.get("line"), lang),
        t["recalibrate"],
        t["re_drift"],
        t["re_change"],
        t["re_months"],
    ]
    return "\n".join(lines) + "\n"


def _card_operating_point(check: dict[str, Any] | None, lang: str = "en") -> list[str]:
    """The model card's line on the threshold's check on never-fitted normal windows, in ``lang``."""
    if not check:
        return []
    t = _CARD.get(lang, _CARD["en"])
    if not check["checked"]:
        return [t["op_unchecked"]]
    return [
        t["op_check"].format(
            verdict=t["op_accepted"] if check["acceptable"] else t["op_rejected"],
            alarming=check["alarming_windows"],
            normal=check["normal_windows"],
            share=100 * check["share"],
            allowed=100 * check["max_share"],
            alarms=check["alarms"],
        )
    ]


def _card_line(line: dict[str, Any] | None, lang: str = "en") -> list[str]:
    """The model card's line section in ``lang`` (nothing without a topology)."""
    if not line:
        return []
    t = _CARD.get(lang, _CARD["en"])
    on = line["calibrated_on"]
    segments = ", ".join(
        t["line_segment"].format(name=name, km=seg["length_km"], limit=_fmt(seg["calibration"].get("limit")))
        for name, seg in line["segments"].items()
    )
    return [
        t["line_title"],
        t["line_topology"].format(
            topology=line["topology"],
            lines=", ".join(line["lines"]),
            stations=", ".join(on["stations"]),
            segments=segments,
        ),
        t["line_calibrated"].format(
            start=on["start"],
            end=on["end"],
            rows=on["rows"],
            excluded=on["excluded_labelled_rows"],
            budget=line["budget_per_segment_month"],
        ),
        *t["line_topology_change"].split("\n"),
        *t["line_meters"].split("\n"),
        "",
    ]


def _minutes(seconds: object) -> str:
    """A duration in seconds as minutes with its unit (``30 min``; ``5 s`` below a minute)."""
    if not isinstance(seconds, int | float):
        return "?"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
