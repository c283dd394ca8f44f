"""report.md and plots of the calibration suite, in English or Spanish, from the report dictionary alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainer.report_templates import load_sections

# The prose, one file per language: templates/calibration.<lang>.md and calibration_plots.<lang>.md.
_PACKAGE = "evaluation.suites"


def _rows(table: Mapping[str, Mapping[str, float]], real: Mapping[str, float] | None) -> list[str]:
    lines = []
    for rule, row in table.items():
        value = None if real is None else real.get(rule)
        lines.append(
            f"| `{rule}` | {row['mean']:.3f} ± {row['sd']:.3f} | {row['p10']:.3f} | {row['median']:.3f} | "
            f"{row['p90']:.3f} | {row['share_at_least_target']:.0%} | "
            f"{'—' if value is None else f'{value:.3f}'} |"
        )
    return lines


_AE_COLUMNS = (
    "autoencoder_f1",
    "autoencoder_best_possible",
    "autoencoder_average_precision",
    "ceiling_f1",
    "ceiling_best_possible",
)


def _autoencoder_lines(check: Mapping[str, Any] | None, text: Mapping[str, str], target: float) -> list[str]:
    if not check or not check["replicates"]:
        return []
    lines = [
        f"## {text['ae_title']}",
        "",
        text["ae_intro"].format(
            method=check["calibration"],
            n=check["replicates"],
            target=target,
            share=check["share_at_least_target"],
        ),
        "",
        text["ae_header"],
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in check["per_replicate"]:
        lines.append(f"| {row['replicate']} | " + " | ".join(f"{row[k]:.3f}" for k in _AE_COLUMNS) + " |")
    mean = check["mean"]
    lines.append(f"| {text['ae_mean']} | " + " | ".join(f"{mean[k]:.3f}" for k in _AE_COLUMNS) + " |")
    return [*lines, ""]


def render_markdown(report: Mapping[str, Any], lang: str, plots: Sequence[str]) -> str:
    text = load_sections(_PACKAGE, "calibration", lang)
    source = report["source"]
    target = report["target_f1"]
    header = (
        f"| {text['rule']} | {text['mean']} ± sd | p10 | p50 | p90 | "
        f"{text['share'].format(target=target)} | {text['real']} |"
    )
    lines = [f"# {text['title']}", ""]
    if report.get("quick"):
        lines += [text["quick"].format(n=report["replicates"]), ""]
    lines += [
        text["method"].format(
            n=report["replicates"],
            rows=source["rows_per_replicate"],
            data=source["data"],
            normal=source["normal_rows"],
            anomalous=source["anomalous_rows"],
            rate=source["anomaly_rate"],
        ),
        "",
        f"## {text['table']}",
        "",
        header,
        "|---|---:|---:|---:|---:|---:|---:|",
        *_rows(report["test_f1"], report["real_split"]),
        "",
        text["reading"].format(
            target=target,
            share=report["test_f1"][report["default_rule"]]["share_at_least_target"],
            rule=report["default_rule"],
            oracle_share=report["test_f1"]["best_possible"]["share_at_least_target"],
        ),
        "",
    ]
    alike = report.get("alike_real_split")
    at_least = report.get("replicates_at_least_real")
    if at_least is not None:
        real, rule = report["real_split"], report["default_rule"]
        lines += [
            text["rank"].format(
                oracle=real["best_possible"],
                above_oracle=at_least["best_possible"],
                calibrated=real[rule],
                above_calibrated=at_least[rule],
            ),
            "",
        ]
    if alike is not None:
        oracle = report["real_split"]["best_possible"]
        if alike["test_f1"] is None:
            lines += [text["alike_none"].format(within=alike["within"]), ""]
        else:
            lines += [
                text["alike"].format(within=alike["within"], oracle=oracle, n=alike["replicates"]),
                "",
                header,
                "|---|---:|---:|---:|---:|---:|---:|",
                *_rows(alike["test_f1"], report["real_split"]),
                "",
            ]
    lines += _autoencoder_lines(report.get("autoencoder"), text, target)
    if plots:
        lines += [f"## {text['plots']}", "", *(f"![{p}]({p})" for p in plots), ""]
    return "\n".join(lines)


def write_plots(report: Mapping[str, Any], folder: Path, lang: str) -> list[Path]:
    """The test-F1 distribution of the default rule and the best threshold; the per-replicate scatter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    words = load_sections(_PACKAGE, "calibration_plots", lang)
    folder.mkdir(parents=True, exist_ok=True)
    rule, target = report["default_rule"], report["target_f1"]
    calibrated = np.asarray(report["per_replicate"][rule])
    oracle = np.asarray(report["per_replicate"]["best_possible"])
    real = report["real_split"]
    written = []

    figure, axis = plt.subplots(figsize=(8, 4))
    low = float(np.floor(min(oracle.min(), calibrated.min(), 0.6) * 20) / 20)
    bins = [float(b) for b in np.linspace(low, 1.0, round((1.0 - low) * 80) + 1)]
    axis.hist(oracle, bins=bins, histtype="step", lw=1.6, color="tab:green", label=words["oracle"])
    calibrated_label = words["calibrated"].format(rule=rule)
    axis.hist(calibrated, bins=bins, histtype="step", lw=1.6, color="tab:blue", label=calibrated_label)
    axis.axvline(target, color="tab:red", ls="--", lw=1, label=words["target"].format(target=target))
    if real is not None:
        for name, color in ((rule, "tab:blue"), ("best_possible", "tab:green")):
            axis.axvline(real[name], color=color, ls=":", lw=1.4, label=words["real"].format(rule=name))
    axis.set_xlabel(words["f1"])
    axis.set_ylabel(words["replicates"])
    axis.set_title(words["distribution"].format(n=report["replicates"]))
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    path = folder / "test_f1_distribution.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    written.append(path)

    figure, axis = plt.subplots(figsize=(5.5, 5))
    axis.scatter(oracle, calibrated, s=10, alpha=0.5, color="tab:blue")
    axis.plot([0, 1], [0, 1], color="0.6", lw=1)
    axis.axhline(target, color="tab:red", ls="--", lw=1)
    if real is not None:
        axis.scatter(
            [real["best_possible"]],
            [real[rule]],
            s=80,
            marker="*",
            color="tab:red",
            label=words["real"].format(rule=rule),
        )
        axis.legend(fontsize=8, loc="upper left")
    low = float(min(oracle.min(), calibrated.min(), 0.5))
    axis.set_xlim(low, 1.01)
    axis.set_ylim(low, 1.01)
    axis.set_xlabel(words["oracle"])
    axis.set_ylabel(words["calibrated"].format(rule=rule))
    axis.set_title(words["scatter"], fontsize=9)
    figure.tight_layout()
    path = folder / "oracle_vs_calibrated.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    written.append(path)
    return written
