"""The run's report: ``report.json`` for tools, ``report.md`` for people (English or Spanish)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import ConfigError
from trainer.line import line_report
from trainer.metrics import METRIC_KEYS
from trainer.pipeline import UNSUPERVISED, RunResult
from trainer.report_templates import load_sections

LANGUAGES = ("en", "es")

# The data set the original pipeline published figures for: they are quoted only for it.
ORIGINAL_DATA_FILE = "rebombeo_huachicoleo.csv"
# Original pipeline's published figures on the seed data set (its README and notebook runs).
ORIGINAL_FIGURES = {
    "autoencoder": {"f1": "0.72 ± 0.04", "average_precision": "0.86", "roc_auc": "0.90"},
    "isolation_forest": {"f1": "0.00"},
    "local_outlier_factor": {"f1": "0.68"},
}

# The prose, one file per language: templates/training.<lang>.md and model_card.<lang>.md.
_PACKAGE = "trainer"


def _t(key: str, lang: str) -> str:
    return load_sections(_PACKAGE, "training", lang)[key]


def _card_words(lang: str) -> Mapping[str, str]:
    """The model card's sections in ``lang``; English for a language it has no template in."""
    return load_sections(_PACKAGE, "model_card", lang if lang in LANGUAGES else "en")


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


def model_card(report: dict[str, Any], lang: str = "en") -> str:
    """MODEL_CARD.md in ``lang``: data, assumptions, calibration, the operating-point check, the line
    section (with a topology), limits, and when to recalibrate; every line in ``lang``."""
    t = _card_words(lang)
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
    t = _card_words(lang)
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
    t = _card_words(lang)
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
