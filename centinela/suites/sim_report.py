"""report.json, report.md (English or Spanish) and plots/ of the sim suite, from the report dictionary."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from replay.simulator.result import SimulationResult

_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Centinela on simulated pipeline data (API RP 1130-style)",
        "quick": "**Quick mode** (CI sizes): a handful of events; these figures say the chain works, "
        "not how well.",
        "path": (
            "Path: simulator → trainer (bundle) → replay into Kafka → `centinela detect` service (exactly "
            "once) "
            "→ alerts topic, joined with the simulator's labelled events. {broker}."
        ),
        "sizes": (
            "Line: {stations} stations, one simulation (seed {seed}, {rate:g} thefts per segment-month): the "
            "first {train_days:g} days train the model, the next {test_days:g} days are replayed; model LSTM "
            "{units}, {epochs} epochs max."
        ),
        "rules": (
            "Rules: a theft is caught when an anomaly incident on one of its two stations opens after its "
            "start and at most 1 h after its end (the downstream flow's recovery); every other anomaly "
            "incident is a false alarm, classified by what was under way when it opened."
        ),
        "points": "Operating points (same model, two thresholds, each replayed live)",
        "points_text": (
            "`trained_threshold`: the trainer's calibrated threshold, best F1 on validation windows "
            "(what `centinela train` ships; its strategy is in the bundle's calibration record). "
            "`alarm_budget`: the largest validation score on windows clear of any tap, i.e. no false "
            "alarm on the validation weeks (chosen without test data). The sections below are for "
            "**{point}**."
        ),
        "point": "operating point",
        "threshold": "threshold",
        "detect2": "≥ 2 % detected",
        "median_all": "median min",
        "false_month": "false / station-month",
        "targets": "Targets",
        "target": "target",
        "value": "value",
        "met": "met",
        "yes": "yes",
        "no": "no",
        "t_detect": "thefts ≥ 2 % of flow detected",
        "t_median": "median minutes to alarm (all caught thefts)",
        "t_false": "false alarms per station-month (normal operation, transients included)",
        "bands": "Thefts by size band",
        "band": "band, % of flow",
        "events": "thefts",
        "caught": "caught",
        "rate": "detection rate",
        "median": "median min to alarm",
        "p90": "p90 min to alarm",
        "smallest": "Smallest tap detected 90 % of the time (of that size or larger): **{value}**.",
        "none": "none",
        "false": "False alarms by cause",
        "cause": "cause",
        "count": "count",
        "false_all": "All false alarms, every cause: {value:.2f} per station-month.",
        "faults": "Sensor faults and dropouts",
        "faults_text": (
            "{events} sensor faults; {gap} raised a `data_gap` alarm, {anomaly} overlapped an anomaly alarm "
            "({trouble} of those alarms had one sensor holding ≥ 60 % of the error, i.e. read as sensor "
            "trouble)."
        ),
        "estimation": "Extraction estimates (API 1130 accuracy)",
        "estimation_text": (
            "Estimated from the segment's level-compensated flow balance of the measured readings over the "
            "incident (baseline: median over the 6 h ending 1 h before the incident's first window). "
            "Median absolute error: rate {rate} %, volume {volume} % ({n} caught thefts)."
        ),
        "event": "event",
        "size": "size, %",
        "minutes": "min",
        "delay": "min to alarm",
        "true_rate": "true m³/h",
        "est_rate": "est. m³/h",
        "true_vol": "true m³",
        "est_vol": "est. m³",
        "window": "Window-level metrics (the service's score records vs. window labels)",
        "reference": "Reference: the segment's flow balance (offline, not the service)",
        "reference_text": (
            "What the same measured readings allow when both ends of a segment are compared (API RP 1130's "
            "classic method): every 5 min, the 30-min mean of the level-compensated imbalance minus its "
            "median over the 6 h ending 1 h earlier; threshold {thr:.1f} m³/h = the largest value of the "
            "training period clear of any tap; the same incident tracker and join. False alarms per "
            "station-month (normal operation): {fa}; all causes: {fa_all}; smallest tap caught 90 %: "
            "{smallest}; extraction estimate median absolute error: rate {rate} %, volume {volume} % "
            "({n} caught thefts)."
        ),
        "plots": "Plots",
        "seconds": "Run time: {s} s.",
    },
    "es": {
        "title": "Centinela con datos simulados de ducto (estilo API RP 1130)",
        "quick": "**Modo rápido** (tamaños de CI): pocos eventos; estas cifras dicen que la cadena "
        "funciona, no cuán bien.",
        "path": (
            "Ruta: simulador → entrenador (bundle) → reproducción en Kafka → servicio `centinela detect` "
            "(exactamente una vez) → tópico de alertas, unido a los eventos etiquetados del simulador. "
            "{broker}."
        ),
        "sizes": (
            "Línea: {stations} estaciones, una simulación (semilla {seed}, {rate:g} tomas por tramo-mes): "
            "los "
            "primeros {train_days:g} días entrenan el modelo, los {test_days:g} siguientes se reproducen; "
            "modelo LSTM {units}, {epochs} épocas máx."
        ),
        "rules": (
            "Reglas: una toma se detecta si un incidente de anomalía en una de sus dos estaciones se abre "
            "tras su inicio y a lo sumo 1 h después de su fin (recuperación del flujo aguas abajo); todo "
            "otro incidente de anomalía es falsa alarma, clasificada por lo que ocurría cuando se abrió."
        ),
        "points": "Puntos de operación (mismo modelo, dos umbrales, cada uno reproducido en vivo)",
        "points_text": (
            "`trained_threshold`: el umbral calibrado del entrenador, mejor F1 en ventanas de "
            "validación (lo que entrega `centinela train`). `alarm_budget`: el mayor puntaje de "
            "validación en ventanas libres de tomas, es decir ninguna falsa alarma en las semanas de "
            "validación (elegido sin datos de prueba). "
            "Las secciones siguientes son para **{point}**."
        ),
        "point": "punto de operación",
        "threshold": "umbral",
        "detect2": "≥ 2 % detectadas",
        "median_all": "min mediana",
        "false_month": "falsas / estación-mes",
        "targets": "Metas",
        "target": "meta",
        "value": "valor",
        "met": "cumplida",
        "yes": "sí",
        "no": "no",
        "t_detect": "tomas ≥ 2 % del flujo detectadas",
        "t_median": "minutos medianos hasta la alarma (tomas detectadas)",
        "t_false": "falsas alarmas por estación-mes (operación normal, transitorios incluidos)",
        "bands": "Tomas por banda de tamaño",
        "band": "banda, % del flujo",
        "events": "tomas",
        "caught": "detectadas",
        "rate": "tasa de detección",
        "median": "min medianos a la alarma",
        "p90": "min p90 a la alarma",
        "smallest": "Toma más pequeña detectada el 90 % de las veces (de ese tamaño o mayor): **{value}**.",
        "none": "ninguna",
        "false": "Falsas alarmas por causa",
        "cause": "causa",
        "count": "cantidad",
        "false_all": "Todas las falsas alarmas, toda causa: {value:.2f} por estación-mes.",
        "faults": "Fallas de sensor y pérdidas de datos",
        "faults_text": (
            "{events} fallas de sensor; {gap} levantaron una alarma `data_gap`, {anomaly} solaparon una "
            "alarma "
            "de anomalía ({trouble} de esas alarmas tenían un sensor con ≥ 60 % del error: se leen como "
            "falla "
            "de instrumento)."
        ),
        "estimation": "Estimación de la extracción (exactitud API 1130)",
        "estimation_text": (
            "Estimada con el balance de flujo del tramo compensado por nivel, sobre las lecturas medidas "
            "durante "
            "el incidente (línea base: mediana de las 6 h que terminan 1 h antes de la primera ventana). "
            "Error absoluto mediano: caudal {rate} %, volumen {volume} % ({n} tomas detectadas)."
        ),
        "event": "evento",
        "size": "tamaño, %",
        "minutes": "min",
        "delay": "min a la alarma",
        "true_rate": "m³/h real",
        "est_rate": "m³/h est.",
        "true_vol": "m³ real",
        "est_vol": "m³ est.",
        "window": "Métricas por ventana (registros de puntaje del servicio vs. etiquetas de ventana)",
        "reference": "Referencia: balance de flujo del tramo (fuera de línea, no el servicio)",
        "reference_text": (
            "Lo que permiten las mismas lecturas medidas al comparar ambos extremos de un tramo (el método "
            "clásico de API RP 1130): cada 5 min, la media de 30 min del desbalance compensado por nivel "
            "menos su mediana en las 6 h que terminan 1 h antes; umbral {thr:.1f} m³/h = el mayor valor del "
            "periodo de entrenamiento libre de tomas; el mismo rastreador de incidentes y la misma unión. "
            "Falsas alarmas por estación-mes (operación normal): {fa}; toda causa: {fa_all}; toma más "
            "pequeña detectada el 90 %: {smallest}; error absoluto mediano de la estimación: caudal "
            "{rate} %, volumen {volume} % ({n} tomas detectadas)."
        ),
        "plots": "Gráficas",
        "seconds": "Tiempo de ejecución: {s} s.",
    },
}


def _fmt(value: Any, digits: int = 1, pct: bool = False) -> str:
    if value is None:
        return "—"
    if pct:
        return f"{100 * float(value):.{digits}f} %"
    return f"{float(value):.{digits}f}"


def render_markdown(report: Mapping[str, Any], plots: list[str], lang: str = "en") -> str:
    t = _TEXT[lang]
    yes_no = {True: t["yes"], False: t["no"]}
    sizes = report["sizes"]
    lines = [f"# {t['title']}", ""]
    if report.get("quick"):
        lines += [t["quick"], ""]
    lines += [
        t["path"].format(broker=report.get("broker", "")),
        "",
        t["sizes"].format(
            stations=sizes["stations"],
            train_days=sizes["train_days"],
            test_days=sizes["test_days"],
            seed=sizes["seeds"]["simulation"],
            rate=sizes["theft_per_segment_month"],
            units="/".join(str(u) for u in sizes["model_units"]),
            epochs=sizes["epochs"],
        ),
        "",
        t["rules"],
        "",
    ]
    points = report.get("operating_points") or {}
    if points:
        lines += [
            f"## {t['points']}",
            "",
            t["points_text"].format(point=report.get("operating_point", "")),
            "",
            f"| {t['point']} | {t['threshold']} | {t['detect2']} | {t['median_all']} | {t['false_month']} | "
            "window F1 | window AP |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, point in points.items():
            wl = point["window_level"]
            detected = _fmt(point["detection_rate_at_least_2pct"], 0, True)
            false_rate = _fmt(point["false_alarms_per_station_month"], 2)
            lines.append(
                f"| {name} | {point['threshold']:.4g} | {detected} | "
                f"{_fmt(point['median_minutes_to_alarm'])} | {false_rate} | "
                f"{_fmt(wl.get('f1'), 3)} | {_fmt(wl.get('average_precision'), 3)} |"
            )
        lines.append("")
    lines += [
        f"## {t['targets']}",
        "",
        f"| | {t['target']} | {t['value']} | {t['met']} |",
        "|---|---|---|---|",
    ]
    targets = report["targets"]
    row = targets["detection_at_least_2pct"]
    lines.append(
        f"| {t['t_detect']} (n = {report['thefts_at_least_2pct']}) | ≥ {_fmt(row['target'], 0, True)} | "
        f"{_fmt(row['value'], 0, True)} | {yes_no[row['met']]} |"
    )
    row = targets["median_minutes_to_alarm"]
    lines.append(f"| {t['t_median']} | ≤ {row['target']:g} | {_fmt(row['value'])} | {yes_no[row['met']]} |")
    row = targets["false_alarms_per_station_month"]
    lines.append(f"| {t['t_false']} | ≤ {row['target']:g} | {_fmt(row['value'], 2)} | {yes_no[row['met']]} |")
    lines += [
        "",
        f"## {t['bands']}",
        "",
        f"| {t['band']} | {t['events']} | {t['caught']} | {t['rate']} | {t['median']} | {t['p90']} |",
        "|---|---|---|---|---|---|",
    ]
    for band, counts in report["events_by_band"].items():
        lines.append(
            f"| {band} | {counts['events']} | {counts['caught']} | "
            f"{_fmt(report['detection_rate_by_band'][band], 0, True)} | "
            f"{_fmt(report['median_minutes_to_alarm_by_band'][band], 0)} | "
            f"{_fmt(report['p90_minutes_to_alarm_by_band'][band], 0)} |"
        )
    smallest = report["smallest_tap_detected_90pct"]
    lines += ["", t["smallest"].format(value=t["none"] if smallest is None else _fmt(smallest, 1, True)), ""]
    lines += [f"## {t['false']}", "", f"| {t['cause']} | {t['count']} |", "|---|---|"]
    for cause, count in report["false_alarms_by_cause"].items():
        lines.append(f"| {cause} | {count} |")
    lines += ["", t["false_all"].format(value=report["false_alarms_per_station_month_all"]), ""]
    faults = report["sensor_faults"]
    lines += [
        f"## {t['faults']}",
        "",
        t["faults_text"].format(
            events=faults["events"],
            gap=faults["with_data_gap_alarm"],
            anomaly=faults["with_anomaly_alarm"],
            trouble=faults["anomaly_alarms_reading_as_sensor_trouble"],
        ),
        "",
        "| event | subtype | station | sensor | min | data_gap | anomaly | sensor-trouble |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in faults["detail"]:
        lines.append(
            f"| {f['event_id']} | {f['subtype']} | {f['station']} | {f['sensor']} | {f['minutes']:.0f} | "
            f"{f['data_gap_alarms']} | {f['anomaly_alarms']} | "
            f"{f['anomaly_alarms_reading_as_sensor_trouble']} |"
        )
    est = report["estimation"]
    lines += [
        "",
        f"## {t['estimation']}",
        "",
        t["estimation_text"].format(
            rate=_fmt(est["median_abs_rate_error_pct"], 0),
            volume=_fmt(est["median_abs_volume_error_pct"], 0),
            n=est["caught_thefts_estimated"],
        ),
        "",
        f"| {t['event']} | {t['size']} | {t['minutes']} | {t['caught']} | {t['delay']} | {t['true_rate']} | "
        f"{t['est_rate']} | {t['true_vol']} | {t['est_vol']} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in report["events"]:
        estimate = e.get("estimate") or {}
        lines.append(
            f"| {e['event_id']} ({e['event_type']}) | {_fmt(e['magnitude'], 2, True).replace(' %', '')} | "
            f"{e['minutes']:.0f} | {yes_no[bool(e['caught'])]} | {_fmt(e['minutes_to_alarm'], 0)} | "
            f"{_fmt(e['true_rate_m3h'])} | {_fmt(estimate.get('rate_m3h'))} | {_fmt(e['true_volume_m3'])} | "
            f"{_fmt(estimate.get('volume_m3'))} |"
        )
    wl = report["window_level"]
    lines += ["", f"## {t['window']}", ""]
    if wl.get("windows"):
        lines += [
            "| precision | recall | F1 | ROC-AUC | AP | windows | positives |",
            "|---|---|---|---|---|---|---|",
            f"| {wl['precision']:.3f} | {wl['recall']:.3f} | {wl['f1']:.3f} | {wl['roc_auc']:.3f} | "
            f"{wl['average_precision']:.3f} | {wl['windows']} | {wl['positives']} |",
        ]
    reference = report.get("reference_flow_balance")
    if reference:
        est = reference["estimation"]
        smallest = reference["smallest_tap_detected_90pct"]
        lines += [
            "",
            f"## {t['reference']}",
            "",
            t["reference_text"].format(
                thr=reference["threshold_m3h"],
                fa=_fmt(reference["false_alarms_per_station_month"], 2),
                fa_all=_fmt(reference["false_alarms_per_station_month_all"], 2),
                smallest=t["none"] if smallest is None else _fmt(smallest, 1, True),
                rate=_fmt(est["median_abs_rate_error_pct"], 0),
                volume=_fmt(est["median_abs_volume_error_pct"], 0),
                n=est["caught_thefts_estimated"],
            ),
            "",
            f"| {t['band']} | {t['events']} | {t['caught']} | {t['rate']} | {t['median']} | {t['p90']} |",
            "|---|---|---|---|---|---|",
        ]
        for band, counts in reference["events_by_band"].items():
            lines.append(
                f"| {band} | {counts['events']} | {counts['caught']} | "
                f"{_fmt(reference['detection_rate_by_band'][band], 0, True)} | "
                f"{_fmt(reference['median_minutes_to_alarm_by_band'][band], 0)} | "
                f"{_fmt(reference['p90_minutes_to_alarm_by_band'][band], 0)} |"
            )
    if plots:
        lines += ["", f"## {t['plots']}", ""] + [f"![{p}]({p})" for p in plots]
    lines += ["", t["seconds"].format(s=report.get("seconds", {}).get("total", "—")), ""]
    return "\n".join(lines)


def write_plots(report: Mapping[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    thefts = [e for e in report["events"] if e["event_type"] == "theft" and e["magnitude"] is not None]

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for caught, colour, name in ((True, "tab:green", "caught"), (False, "tab:red", "missed")):
        chosen = [e for e in thefts if bool(e["caught"]) is caught]
        axis.scatter(
            [100 * e["magnitude"] for e in chosen],
            [e["minutes_to_alarm"] if caught else 0 for e in chosen],
            c=colour,
            label=name,
            s=22,
        )
    axis.set_xscale("log")
    axis.set_xlabel("theft size, % of flow")
    axis.set_ylabel("minutes to alarm (missed at 0)")
    axis.legend()
    axis.set_title("Thefts: size vs time to alarm")
    figure.tight_layout()
    path = out / "time_to_alarm.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    paths.append(path)

    estimated = [e for e in thefts if e.get("estimate")]
    if estimated:
        figure, axis = plt.subplots(figsize=(5, 5))
        truth = [e["true_volume_m3"] for e in estimated]
        guess = [e["estimate"]["volume_m3"] for e in estimated]
        axis.scatter(truth, guess, s=22)
        top = max(*truth, *guess, 1.0)
        axis.plot([0, top], [0, top], color="grey", linewidth=1)
        axis.set_xlabel("true volume, m³")
        axis.set_ylabel("estimated volume, m³")
        axis.set_title("Caught thefts: volume estimate vs truth")
        figure.tight_layout()
        path = out / "volume_estimates.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)

    figure, axis = plt.subplots(figsize=(6, 3.5))
    bands = list(report["detection_rate_by_band"])
    rates = [report["detection_rate_by_band"][b] or 0.0 for b in bands]
    axis.bar(bands, [100 * r for r in rates], color="tab:blue")
    axis.axhline(95, color="grey", linestyle="--", linewidth=1)
    axis.set_ylim(0, 105)
    axis.set_xlabel("theft size band, % of flow")
    axis.set_ylabel("detected, %")
    figure.tight_layout()
    path = out / "detection_by_band.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    paths.append(path)
    return paths


def write_outputs(
    report: dict[str, Any], out: Path, lang: str = "en", result: SimulationResult | None = None
) -> None:
    plots = write_plots(report, out / "plots")
    if result is not None:
        from replay.simulator.plots import plot_segment

        path = out / "plots" / "segment.png"
        plot_segment(result, path, days=min(3, max(1, len(result.times) // 1440)))
        plots.append(path)
    names = [str(p.relative_to(out)) for p in plots]
    report["plots"] = names
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.md").write_text(render_markdown(report, names, lang))
