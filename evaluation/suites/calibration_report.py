"""report.md and plots of the calibration suite, in English or Spanish, from the report dictionary alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "How far a threshold chosen on validation carries to test (seed data set)",
        "quick": "**Quick mode**: {n} replicates only; the full run draws 1,000.",
        "method": (
            "Method: {n} data sets of {rows} one-minute rows are drawn from the **training split only** "
            "of `{data}` ({normal} normal and {anomalous} labelled rows, in z-units, resampled with "
            "replacement; each row anomalous with the training rate {rate:.2%}). Each is split 60/20/20 "
            "and windowed 30/5 like the original; the detector is the issue's ceiling (per-minute mean "
            "squared z-score against the normal training rows, maximum over the window). Every "
            "rule chooses its threshold on the replicate's validation split (false alarms also counted on "
            "the last 10 % of normal training windows, as the trainer does) and is read on the "
            "replicate's test split. `best_possible` is the best threshold of the test windows themselves."
        ),
        "table": "Test F1 over the replicates",
        "rule": "rule",
        "mean": "mean",
        "share": "share ≥ {target:g}",
        "real": "real split",
        "alike": (
            "Replicates whose best-possible test F1 is within ±{within:g} of the real split's "
            "({oracle:.3f}): {n}. On those, a threshold from validation gives:"
        ),
        "rank": (
            "The real split (same detector, same rules) is harder than most: its best-possible test F1 "
            "{oracle:.3f} is reached or beaten by {above_oracle:.0%} of replicates, and its F1 with the "
            "default rule, {calibrated:.3f}, by {above_calibrated:.0%}."
        ),
        "alike_none": "No replicate's best-possible test F1 came within ±{within:g} of the real split's.",
        "reading": (
            "Reading: the target F1 {target:g} is met on {share:.0%} of replicates with the default rule "
            "(`{rule}`), and by the best test threshold itself on {oracle_share:.0%}. The gap between "
            "`best_possible` and the rules is what a validation split of this size costs; the spread "
            "(p10-p90) is what one test split of this size can say."
        ),
        "ae_title": "The autoencoder on the same replicates",
        "ae_intro": (
            "The trainer itself (default architecture and settings, calibration `{method}`) on the first "
            "{n} replicates above, beside the ceiling detector on the same data. The autoencoder meets "
            "F1 ≥ {target:g} on {share:.0%} of them. Replicates with no anomaly in validation or test "
            "are left out."
        ),
        "ae_header": (
            "| replicate | autoencoder F1 | autoencoder best possible | autoencoder AP | ceiling F1 | "
            "ceiling best possible |"
        ),
        "ae_mean": "**mean**",
        "plots": "Plots",
    },
    "es": {
        "title": "Qué tan bien se traslada a prueba un umbral elegido en validación (datos semilla)",
        "quick": "**Modo rápido**: solo {n} réplicas; la corrida completa genera 1 000.",
        "method": (
            "Método: se generan {n} conjuntos de {rows} filas de un minuto **solo a partir del tramo de "
            "entrenamiento** de `{data}` ({normal} filas normales y {anomalous} etiquetadas, en unidades "
            "z, remuestreadas con reemplazo; cada fila es anómala con la tasa de entrenamiento "
            "{rate:.2%}). Cada uno se divide 60/20/20 y en ventanas 30/5 como el original; el detector es "
            "el techo del issue (media por minuto de los z cuadrados frente a las filas normales de "
            "entrenamiento, máximo sobre la ventana). Cada regla elige su umbral en la validación de la "
            "réplica (las falsas alarmas también se cuentan en el último 10 % de ventanas normales de "
            "entrenamiento, como hace el entrenador) y se mide en la prueba de la réplica. "
            "`best_possible` es el mejor umbral de las propias ventanas de prueba."
        ),
        "table": "F1 de prueba sobre las réplicas",
        "rule": "regla",
        "mean": "media",
        "share": "fracción ≥ {target:g}",
        "real": "división real",
        "alike": (
            "Réplicas cuyo mejor F1 posible en prueba queda a ±{within:g} del de la división real "
            "({oracle:.3f}): {n}. En ellas, un umbral elegido en validación da:"
        ),
        "rank": (
            "La división real (mismo detector, mismas reglas) es más difícil que la mayoría: su mejor F1 "
            "posible en prueba, {oracle:.3f}, lo alcanza o supera el {above_oracle:.0%} de las réplicas, "
            "y su F1 con la regla por defecto, {calibrated:.3f}, el {above_calibrated:.0%}."
        ),
        "alike_none": "Ninguna réplica quedó a ±{within:g} del mejor F1 posible de la división real.",
        "reading": (
            "Lectura: la meta F1 {target:g} se alcanza en el {share:.0%} de las réplicas con la regla por "
            "defecto (`{rule}`), y con el mejor umbral de la propia prueba en el {oracle_share:.0%}. La "
            "distancia entre `best_possible` y las reglas es lo que cuesta una validación de este tamaño; "
            "la dispersión (p10-p90) es lo que puede decir una sola prueba de este tamaño."
        ),
        "ae_title": "El autoencoder en las mismas réplicas",
        "ae_intro": (
            "El propio entrenador (arquitectura y ajustes por defecto, calibración `{method}`) en las "
            "primeras {n} réplicas de arriba, junto al detector techo con los mismos datos. El "
            "autoencoder alcanza F1 ≥ {target:g} en el {share:.0%} de ellas. Se omiten las réplicas sin "
            "anomalías en validación o prueba."
        ),
        "ae_header": (
            "| réplica | F1 autoencoder | mejor posible autoencoder | AP autoencoder | F1 techo | "
            "mejor posible techo |"
        ),
        "ae_mean": "**media**",
        "plots": "Gráficas",
    },
}

_PLOT_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "f1": "test F1",
        "replicates": "replicates",
        "target": "target {target:g}",
        "real": "real split: {rule}",
        "oracle": "best possible on test",
        "calibrated": "threshold from validation ({rule})",
        "distribution": "Test F1 over {n} replicates drawn from the training split",
        "scatter": "Each replicate: what calibration gave vs what the test split allowed",
    },
    "es": {
        "f1": "F1 de prueba",
        "replicates": "réplicas",
        "target": "meta {target:g}",
        "real": "división real: {rule}",
        "oracle": "mejor posible en prueba",
        "calibrated": "umbral de validación ({rule})",
        "distribution": "F1 de prueba sobre {n} réplicas generadas del tramo de entrenamiento",
        "scatter": "Cada réplica: lo que dio la calibración frente a lo que permitía la prueba",
    },
}


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
    text = _TEXT[lang]
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

    words = _PLOT_TEXT[lang]
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
