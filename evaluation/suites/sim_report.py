"""report.json, report.md (English or Spanish) and plots/ of the sim suite, from the report dictionary.

The prose says, for every target not met, how far it is and why, with the figures the report holds
(what the missed thefts were, which causes the false alarms had).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evaluation.suites.sim_events import quantile

_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Centinela on simulated pipeline data: the line-aware service",
        "quick": (
            "**Quick mode** (CI sizes): a handful of events; these figures say the chain works, not how well."
        ),
        "path": "Path: {path}. {broker}.",
        "sizes": (
            "Per seed ({seeds}): one simulated line of {stations} stations, {rate:g} thefts per "
            "segment-month; the first {train_days:g} days calibrate the segment detector and "
            "train the per-station autoencoder (LSTM {units}, {epochs} epochs max; trained on "
            "seeds {ae_seeds}), the next {test_days:g} days are judged. Simulator realism: {realism}."
        ),
        "rules": (
            "Rules: a theft or leak is caught when a `tap` incident on its own segment opens after its start "
            "and at most 1 h after its end; time to alarm = the incident's first decision minute − the "
            "theft's start. Volume comes from the incident's last alert (its close alert), location from "
            "its last alert that carried one. "
            "Every other tap incident is a false alarm, classified by what was under way when it opened; "
            "the service's station (autoencoder) incidents count as false alarms too unless linked to a "
            "tap incident or opened during a tap on their station. Normal operation = unexplained, "
            "transient and maintenance."
        ),
        "targets": "Targets (pooled over the seeds)",
        "target": "target",
        "value": "value",
        "met": "met",
        "per_seed": "per seed",
        "yes": "yes",
        "no": "no",
        "t_taps_ge_2pct_detected": "taps ≥ 2 % of flow caught",
        "t_taps_ge_2pct_30min_detected": "taps ≥ 2 % lasting ≥ 30 min caught",
        "t_thefts_ge_8m3_detected": "thefts taking ≥ 8 m³ caught",
        "t_median_minutes_to_alarm_ge_2pct": "median minutes to alarm, taps ≥ 2 %",
        "t_false_alarms_per_station_month": "false alarms per station-month, normal operation",
        "t_location_median_error_pct_of_segment": "location, median error, % of segment",
        "t_volume_median_abs_error_pct": "volume, median absolute error, %",
        "all_causes": "False alarms per station-month, every cause: {value} (target ≤ {target}: {met}).",
        "gaps": "Where a target is not met",
        "all_met": "Every target is met.",
        "gap_detect": (
            "**{name}**: {value} against {target}, {short} short ({missed} of {n} missed). The missed ones: "
            "median size {size} % of flow, median {minutes} min long, median true volume {volume} m³; "
            "{under4} of them took under 4 m³."
        ),
        "gap_median": (
            "**{name}**: {value} min against ≤ {target}, {over} min over; p90 {p90} min. By band: {bands}."
        ),
        "gap_false": (
            "**{name}**: {value} against ≤ {target}, {over} over. Tap incidents by cause: {tap}; station "
            "incidents by cause: {station}. Tap false alarms by segment (every cause): {segments}."
        ),
        "gap_estimate": (
            "**{name}**: {value} % against ≤ {target} %, {over} points over; p90 {p90} % ({n} caught thefts)."
        ),
        "gap_ends": " {ends} of the {n} location estimates sit at an end of the segment (within 1 %).",
        "gap_none": "**{name}**: nothing to judge (no caught theft or no event in this class).",
        "rows": "Service, autoencoder alone and the offline reference",
        "row": "row",
        "r_service": "service (line + autoencoder, headline)",
        "r_autoencoder": "per-station autoencoder alone (same live run)",
        "r_reference": "reference: the suite's offline segment flow balance",
        "detect2": "taps ≥ 2 % caught",
        "median2": "median min (≥ 2 %)",
        "false_month": "false / station-month (normal)",
        "false_all": "false / station-month (all)",
        "bands": "Thefts by size band (service)",
        "band": "band, % of flow",
        "volumes": "Thefts by extracted volume (service)",
        "vband": "true volume, m³",
        "events": "thefts",
        "caught": "caught",
        "rate": "detection rate",
        "median": "median min to alarm",
        "p90": "p90 min to alarm",
        "ae_rate": "autoencoder rate",
        "ref_rate": "reference rate",
        "causes": "False alarms by cause",
        "cause": "cause",
        "tap": "tap incidents",
        "station": "station incidents",
        "meters": "Meter faults (simulated flow and level sensor faults)",
        "meters_text": (
            "{n} flow/level faults; {reported} raised a `meter_fault` on the right station and sensor; "
            "{with_tap} saw a tap alarm on one of their segments while on; {spurious} meter_fault "
            "incidents matched no simulated fault."
        ),
        "subtype": "fault",
        "faults": "faults",
        "reported": "reported",
        "estimates": "Location and volume estimates (caught thefts)",
        "estimates_text": (
            "Location: median error {loc} % of the segment's length, p90 {loc90} % ({nloc} estimates). "
            "Volume: median absolute error {vol} %, p90 {vol90} % ({nvol} estimates); rate: median "
            "absolute error {rate} %. Volume and rate: the incident's last alert (its close alert); "
            "location: its last alert that carried one."
        ),
        "leaks": "Leaks: {caught} of {n} caught, median {median} min to alarm.",
        "leak_scenario": (
            "Leaks (their own scenario: each seed's line with thefts off and {rate:g} leaks per "
            "segment-month, growing to 0.2-2 % of flow over 6-72 h; offline through the seed's line "
            "calibration): {caught} of {n} caught, median {median} min to alarm (p90 {p90}), when the leak "
            "had reached a median {size} % of flow; false alarms {fa} per station-month."
        ),
        "leak_band": "final size {band} % of flow: {caught} of {n} caught, median {median} min",
        "drift": (
            "Drift faults ({n} in the test periods): longest station incident {longest} h (maximum "
            "{limit} h; {over} over it), longest tap incident {tap} h. Thefts and leaks that started "
            "after a drift ended at one of their stations: {after}, {caught} caught, {blocked} blocked at "
            "their start by an incident still open from before: {verdict}."
        ),
        "drift_met": "target met",
        "drift_missed": "target not met",
        "parity": "Live against the offline oracle",
        "parity_row": (
            "seed {seed}: {live} segment alerts live, {offline} offline, {only_live} only live, "
            "{only_offline} only offline (and {at_end} only offline at the data's end, decided by the "
            "oracle's final flush, which the live service decides once later readings arrive): {verdict}."
        ),
        "same": "the same",
        "differ": "they differ",
        "seed_table": "Targets per seed",
        "seed": "seed",
        "detail": "Caught thefts (first 40)",
        "event": "event",
        "segment": "segment",
        "size": "size, %",
        "delay": "min to alarm",
        "true_km": "true km",
        "est_km": "est. km",
        "true_vol": "true m³",
        "est_vol": "est. m³",
        "plots": "Plots",
        "seconds": "Run time: {s} s.",
        "none": "—",
    },
    "es": {
        "title": "Centinela con datos simulados de ducto: el servicio consciente de la línea",
        "quick": (
            "**Modo rápido** (tamaños de CI): pocos eventos; estas cifras dicen que la cadena funciona, "
            "no cuán bien."
        ),
        "path": "Ruta: {path}. {broker}.",
        "sizes": (
            "Por semilla ({seeds}): una línea simulada de {stations} estaciones, {rate:g} tomas por "
            "tramo-mes; los primeros {train_days:g} días calibran el detector de tramos y entrenan "
            "el autocodificador por estación (LSTM {units}, {epochs} épocas máx.; entrenado en "
            "las semillas {ae_seeds}), los "
            "{test_days:g} días siguientes se evalúan. Realismo del simulador: {realism}."
        ),
        "rules": (
            "Reglas: una toma o fuga se detecta si un incidente `tap` en su propio tramo se abre tras su "
            "inicio y a lo sumo 1 h después de su fin; tiempo de alarma = primer minuto de decisión del "
            "incidente − inicio de la toma. El volumen viene de la última alerta del incidente (su cierre), "
            "la ubicación de su última alerta que la traía. Todo otro incidente tap es falsa alarma, "
            "clasificada por lo que ocurría al "
            "abrirse; los incidentes de estación (autocodificador) del servicio también cuentan como falsas "
            "alarmas salvo que estén enlazados a un incidente tap o se abran durante una toma en su "
            "estación. Operación normal = sin explicación, transitorio y mantenimiento."
        ),
        "targets": "Metas (todas las semillas juntas)",
        "target": "meta",
        "value": "valor",
        "met": "cumplida",
        "per_seed": "por semilla",
        "yes": "sí",
        "no": "no",
        "t_taps_ge_2pct_detected": "tomas ≥ 2 % del flujo detectadas",
        "t_taps_ge_2pct_30min_detected": "tomas ≥ 2 % de ≥ 30 min detectadas",
        "t_thefts_ge_8m3_detected": "robos de ≥ 8 m³ detectados",
        "t_median_minutes_to_alarm_ge_2pct": "mediana de minutos a la alarma, tomas ≥ 2 %",
        "t_false_alarms_per_station_month": "falsas alarmas por estación-mes, operación normal",
        "t_location_median_error_pct_of_segment": "ubicación, error mediano, % del tramo",
        "t_volume_median_abs_error_pct": "volumen, error absoluto mediano, %",
        "all_causes": "Falsas alarmas por estación-mes, todas las causas: {value} (meta ≤ {target}: {met}).",
        "gaps": "Dónde no se cumple una meta",
        "all_met": "Se cumplen todas las metas.",
        "gap_detect": (
            "**{name}**: {value} frente a {target}, faltan {short} ({missed} de {n} sin detectar). Las no "
            "detectadas: tamaño mediano {size} % del flujo, duración mediana {minutes} min, volumen real "
            "mediano {volume} m³; {under4} de ellas tomaron menos de 4 m³."
        ),
        "gap_median": (
            "**{name}**: {value} min frente a ≤ {target}, {over} min de más; p90 {p90} min. "
            "Por banda: {bands}."
        ),
        "gap_false": (
            "**{name}**: {value} frente a ≤ {target}, {over} de más. Incidentes tap por causa: {tap}; "
            "incidentes de estación por causa: {station}. Falsas alarmas tap por tramo (todas las "
            "causas): {segments}."
        ),
        "gap_estimate": (
            "**{name}**: {value} % frente a ≤ {target} %, {over} puntos de más; p90 {p90} % ({n} robos "
            "detectados)."
        ),
        "gap_ends": (
            " {ends} de las {n} ubicaciones estimadas quedan en un extremo del tramo (a menos de 1 %)."
        ),
        "gap_none": "**{name}**: nada que evaluar (ningún robo detectado o ningún evento de esta clase).",
        "rows": "Servicio, autocodificador solo y la referencia fuera de línea",
        "row": "fila",
        "r_service": "servicio (línea + autocodificador, principal)",
        "r_autoencoder": "autocodificador por estación solo (misma corrida en vivo)",
        "r_reference": "referencia: balance de flujo del tramo de la suite, fuera de línea",
        "detect2": "tomas ≥ 2 % detectadas",
        "median2": "mediana min (≥ 2 %)",
        "false_month": "falsas / estación-mes (normal)",
        "false_all": "falsas / estación-mes (todas)",
        "bands": "Robos por banda de tamaño (servicio)",
        "band": "banda, % del flujo",
        "volumes": "Robos por volumen extraído (servicio)",
        "vband": "volumen real, m³",
        "events": "robos",
        "caught": "detectados",
        "rate": "tasa de detección",
        "median": "mediana min a alarma",
        "p90": "p90 min a alarma",
        "ae_rate": "tasa autocodificador",
        "ref_rate": "tasa referencia",
        "causes": "Falsas alarmas por causa",
        "cause": "causa",
        "tap": "incidentes tap",
        "station": "incidentes de estación",
        "meters": "Fallas de medidor (fallas simuladas de sensores de flujo y nivel)",
        "meters_text": (
            "{n} fallas de flujo/nivel; {reported} levantaron un `meter_fault` en la estación y el sensor "
            "correctos; {with_tap} coincidieron con una alarma tap en uno de sus tramos; {spurious} "
            "incidentes meter_fault no corresponden a ninguna falla simulada."
        ),
        "subtype": "falla",
        "faults": "fallas",
        "reported": "reportadas",
        "estimates": "Estimaciones de ubicación y volumen (robos detectados)",
        "estimates_text": (
            "Ubicación: error mediano {loc} % de la longitud del tramo, p90 {loc90} % ({nloc} estimaciones). "
            "Volumen: error absoluto mediano {vol} %, p90 {vol90} % ({nvol} estimaciones); caudal: error "
            "absoluto mediano {rate} %. Volumen y caudal: la última alerta del incidente (su cierre); "
            "ubicación: su última alerta que la traía."
        ),
        "leaks": "Fugas: {caught} de {n} detectadas, mediana {median} min a la alarma.",
        "leak_scenario": (
            "Fugas (escenario propio: la línea de cada semilla sin robos y con {rate:g} fugas por "
            "tramo-mes, que crecen hasta 0,2-2 % del caudal en 6-72 h; fuera de línea con la calibración "
            "de la línea de cada semilla): {caught} de {n} detectadas, mediana {median} min a la alarma "
            "(p90 {p90}), cuando la fuga llegaba a una mediana de {size} % del caudal; falsas alarmas "
            "{fa} por estación-mes."
        ),
        "leak_band": "tamaño final {band} % del caudal: {caught} de {n} detectadas, mediana {median} min",
        "drift": (
            "Derivas de sensor ({n} en los periodos de prueba): incidente de estación más largo {longest} h "
            "(máximo {limit} h; {over} lo superan), incidente de toma más largo {tap} h. Robos y fugas que "
            "empezaron después de terminar una deriva en una de sus estaciones: {after}, {caught} "
            "detectados, {blocked} bloqueados al empezar por un incidente abierto desde antes: {verdict}."
        ),
        "drift_met": "objetivo cumplido",
        "drift_missed": "objetivo no cumplido",
        "parity": "En vivo frente al oráculo fuera de línea",
        "parity_row": (
            "semilla {seed}: {live} alertas de tramo en vivo, {offline} fuera de línea, {only_live} "
            "solo en vivo, {only_offline} solo fuera de línea (y {at_end} solo fuera de línea al final de "
            "los datos, decididas por el vaciado final del oráculo, que el servicio en vivo decide al llegar "
            "lecturas posteriores): {verdict}."
        ),
        "same": "iguales",
        "differ": "difieren",
        "seed_table": "Metas por semilla",
        "seed": "semilla",
        "detail": "Robos detectados (primeros 40)",
        "event": "evento",
        "segment": "tramo",
        "size": "tamaño, %",
        "delay": "min a alarma",
        "true_km": "km real",
        "est_km": "km est.",
        "true_vol": "m³ reales",
        "est_vol": "m³ est.",
        "plots": "Gráficas",
        "seconds": "Tiempo de ejecución: {s} s.",
        "none": "—",
    },
}

PERCENT_TARGETS = ("taps_ge_2pct_detected", "taps_ge_2pct_30min_detected", "thefts_ge_8m3_detected")
SUBSET_OF = {
    "taps_ge_2pct_detected": "taps_ge_2pct",
    "taps_ge_2pct_30min_detected": "taps_ge_2pct_30min",
    "thefts_ge_8m3_detected": "thefts_ge_8m3",
}


def _leak_lines(leaks: dict[str, Any], t: dict[str, str]) -> list[str]:
    """The leak figures: the leak scenario's when the run had one, else the main runs' leaks."""
    median = _fmt(leaks["median_minutes_to_alarm"], 0)
    scenario = leaks.get("scenario")
    if scenario is None:
        return [t["leaks"].format(caught=leaks["caught"], n=leaks["events"], median=median)]
    lines = [
        t["leak_scenario"].format(
            rate=scenario["leaks_per_segment_month"],
            caught=leaks["caught"],
            n=leaks["events"],
            median=median,
            p90=_fmt(leaks["p90_minutes_to_alarm"], 0),
            size=_fmt(leaks["median_size_at_alarm_pct_of_flow"], 2),
            fa=_fmt(leaks["false_alarms_per_station_month"], 2),
        ),
        "",
    ]
    for band, row in leaks["by_final_size_pct_of_flow"].items():
        line = t["leak_band"].format(
            band=band, caught=row["caught"], n=row["events"], median=_fmt(row["median_minutes_to_alarm"], 0)
        )
        lines.append(f"- {line}")
    return lines


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    return f"{float(value):.{digits}f}"


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.0f} %"


def _shown(key: str, value: Any) -> str:
    return _pct(value) if key in PERCENT_TARGETS else _fmt(value)


def _target_text(key: str, target: float) -> str:
    if key in PERCENT_TARGETS:
        return f"≥ {_pct(target)}"
    return f"≤ {target:g}"


def _in_subset(key: str, event: Mapping[str, Any]) -> bool:
    if event["event_type"] != "theft":
        return False
    if key == "thefts_ge_8m3_detected":
        return float(event["true_volume_m3"] or 0.0) >= 8.0
    at_2pct = float(event["magnitude"] or 0.0) >= 0.02
    return at_2pct and (key == "taps_ge_2pct_detected" or float(event["minutes"]) >= 30.0)


def _location_at_ends(events: Sequence[Mapping[str, Any]]) -> int:
    """Caught thefts whose location estimate sits at 0 or at the segment's length (within 1 %)."""
    count = 0
    for event in events:
        estimate = event.get("estimate") or {}
        location, length = estimate.get("location_km"), event.get("segment_length_km")
        if event["event_type"] == "theft" and location is not None and length:
            share = float(location) / float(length)
            count += 1 if share <= 0.01 or share >= 0.99 else 0
    return count


def _by_segment(false_alarms: Sequence[Mapping[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for alarm in false_alarms:
        key = f"{alarm['segment']} (seed {alarm['seed']})" if "seed" in alarm else str(alarm["segment"])
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {n}" for name, n in ranked[:6]) or "0"


def _gap_lines(report: Mapping[str, Any], t: Mapping[str, str]) -> list[str]:
    """Why each target not met is not, with figures."""
    lines: list[str] = []
    events: Sequence[Mapping[str, Any]] = report.get("events", [])
    for key, target in report["targets"].items():
        if target["met"]:
            continue
        name = t[f"t_{key}"]
        value = target["value"]
        if value is None:
            lines.append(t["gap_none"].format(name=name))
            continue
        if key in PERCENT_TARGETS:
            chosen = [e for e in events if _in_subset(key, e)]
            missed = [e for e in chosen if not e["caught"]]
            lines.append(
                t["gap_detect"].format(
                    name=name,
                    value=_pct(value),
                    target=_pct(target["target"]),
                    short=f"{100 * (target['target'] - value):.0f} pts",
                    missed=len(missed),
                    n=len(chosen),
                    size=_fmt(quantile([100 * float(e["magnitude"]) for e in missed], 0.5)),
                    minutes=_fmt(quantile([float(e["minutes"]) for e in missed], 0.5), 0),
                    volume=_fmt(quantile([float(e["true_volume_m3"]) for e in missed], 0.5)),
                    under4=sum(1 for e in missed if float(e["true_volume_m3"] or 0) < 4.0),
                )
            )
        elif key == "median_minutes_to_alarm_ge_2pct":
            delays = [
                float(e["minutes_to_alarm"])
                for e in events
                if _in_subset("taps_ge_2pct_detected", e) and e["caught"]
            ]
            bands = ", ".join(
                f"{band} {_fmt(median, 0)}"
                for band, median in report["median_minutes_to_alarm_by_band"].items()
            )
            lines.append(
                t["gap_median"].format(
                    name=name,
                    value=_fmt(value, 0),
                    target=f"{target['target']:g}",
                    over=_fmt(value - target["target"], 0),
                    p90=_fmt(quantile(delays, 0.9), 0),
                    bands=bands,
                )
            )
        elif key == "false_alarms_per_station_month":
            causes = report["false_alarms_by_cause"]
            lines.append(
                t["gap_false"].format(
                    name=name,
                    value=_fmt(value, 2),
                    target=f"{target['target']:g}",
                    over=_fmt(value - target["target"], 2),
                    tap=", ".join(f"{c} {n}" for c, n in causes["tap"].items() if n) or "0",
                    station=", ".join(f"{c} {n}" for c, n in causes["station"].items() if n) or "0",
                    segments=_by_segment(report.get("false_alarms", [])),
                )
            )
        else:
            block = report["location"] if key.startswith("location") else report["volume"]
            p90 = block.get("p90_error_pct_of_segment", block.get("p90_abs_error_pct"))
            text = t["gap_estimate"].format(
                name=name,
                value=_fmt(value),
                target=f"{target['target']:g}",
                over=_fmt(value - target["target"]),
                p90=_fmt(p90),
                n=block["estimated"],
            )
            if key.startswith("location"):
                ends = _location_at_ends(events)
                text += t["gap_ends"].format(ends=ends, n=block["estimated"])
            lines.append(text)
    return lines or [t["all_met"]]


def _band_table(
    report: Mapping[str, Any], t: Mapping[str, str], prefix: str, label: str, extra: bool
) -> list[str]:
    rows: Mapping[str, Any] = report.get("rows", {})
    header = f"| {label} | {t['events']} | {t['caught']} | {t['rate']} | {t['median']} | {t['p90']} |"
    rule = "|---|---|---|---|---|---|"
    if extra:
        header += f" {t['ae_rate']} | {t['ref_rate']} |"
        rule += "---|---|"
    lines = [header, rule]
    for band, counts in report[f"events_by_{prefix}"].items():
        cells = [
            band,
            str(counts["events"]),
            str(counts["caught"]),
            _pct(report[f"detection_rate_by_{prefix}"][band]),
            _fmt(report[f"median_minutes_to_alarm_by_{prefix}"][band], 0),
            _fmt(report[f"p90_minutes_to_alarm_by_{prefix}"][band], 0),
        ]
        if extra:
            for row in ("autoencoder", "reference_flow_balance"):
                cells.append(_pct(rows.get(row, {}).get("detection_rate_by_band", {}).get(band)))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: Mapping[str, Any], plots: list[str], lang: str = "en") -> str:
    t = _TEXT.get(lang, _TEXT["en"])
    sizes = report["sizes"]
    seeds = report["seeds"]
    first = report["per_seed"].get(str(seeds[0]), {}) if seeds else {}
    realism = ", ".join(f"{k} = {v}" for k, v in (first.get("realism") or {}).items()) or "—"
    out = [f"# {t['title']}", ""]
    if report.get("quick"):
        out += [t["quick"], ""]
    out += [
        t["path"].format(path=report["path"], broker=report.get("broker", "")),
        "",
        t["sizes"].format(
            seeds=", ".join(str(s) for s in seeds),
            stations=sizes["stations"],
            rate=sizes["theft_per_segment_month"],
            train_days=sizes["train_days"],
            test_days=sizes["test_days"],
            units="/".join(str(u) for u in sizes["model_units"]),
            epochs=sizes["epochs"],
            ae_seeds=", ".join(str(s) for s in sizes["autoencoder_seeds"]) or "—",
            realism=realism,
        ),
        "",
        t["rules"],
        "",
        f"## {t['targets']}",
        "",
        f"| | {t['value']} | {t['target']} | {t['met']} | {t['per_seed']} |",
        "|---|---|---|---|---|",
    ]
    for key, target in report["targets"].items():
        per_seed = ", ".join(
            f"{seed}: {_shown(key, report['per_seed'][str(seed)]['targets'][key]['value'])}" for seed in seeds
        )
        out.append(
            f"| {t[f't_{key}']} | {_shown(key, target['value'])} | {_target_text(key, target['target'])} | "
            f"{t['yes'] if target['met'] else t['no']} | {per_seed} |"
        )
    everything = report["false_alarms_all_causes_target"]
    out += [
        "",
        t["all_causes"].format(
            value=_fmt(everything["value"], 2),
            target=f"{everything['target']:g}",
            met=t["yes"] if everything["met"] else t["no"],
        ),
        "",
        f"### {t['gaps']}",
        "",
    ]
    out += [f"- {line}" for line in _gap_lines(report, t)]
    out += ["", f"## {t['rows']}", ""]
    out += [
        f"| {t['row']} | {t['detect2']} | {t['median2']} | {t['false_month']} | {t['false_all']} |",
        "|---|---|---|---|---|",
    ]
    labels = {
        "service": t["r_service"],
        "autoencoder": t["r_autoencoder"],
        "reference_flow_balance": t["r_reference"],
    }
    for name, row in report.get("rows", {}).items():
        out.append(
            f"| {labels.get(name, name)} | {_pct(row.get('taps_ge_2pct_detected'))} | "
            f"{_fmt(row.get('median_minutes_to_alarm_ge_2pct'), 0)} | "
            f"{_fmt(row.get('false_alarms_per_station_month'), 2)} | "
            f"{_fmt(row.get('false_alarms_per_station_month_all'), 2)} |"
        )
    out += ["", f"## {t['bands']}", ""]
    out += _band_table(report, t, "band", t["band"], extra=True)
    out += ["", f"## {t['volumes']}", ""]
    out += _band_table(report, t, "volume", t["vband"], extra=False)
    causes = report["false_alarms_by_cause"]
    out += ["", f"## {t['causes']}", "", f"| {t['cause']} | {t['tap']} | {t['station']} |", "|---|---|---|"]
    for cause in dict.fromkeys([*causes["tap"], *causes["station"]]):
        out.append(f"| {cause} | {causes['tap'].get(cause, '—')} | {causes['station'].get(cause, '—')} |")
    meters = report["meter_faults"]
    out += [
        "",
        f"## {t['meters']}",
        "",
        t["meters_text"].format(
            n=meters["flow_or_level_faults"],
            reported=meters["reported"],
            with_tap=meters["with_tap_alarm"],
            spurious=meters["spurious_meter_fault_incidents"],
        ),
        "",
        f"| {t['subtype']} | {t['faults']} | {t['reported']} |",
        "|---|---|---|",
    ]
    out += [f"| {k} | {v['faults']} | {v['reported']} |" for k, v in meters["by_subtype"].items()]
    location, volume, leaks = report["location"], report["volume"], report["leaks"]
    out += [
        "",
        f"## {t['estimates']}",
        "",
        t["estimates_text"].format(
            loc=_fmt(location["median_error_pct_of_segment"]),
            loc90=_fmt(location["p90_error_pct_of_segment"]),
            nloc=location["estimated"],
            vol=_fmt(volume["median_abs_error_pct"]),
            vol90=_fmt(volume["p90_abs_error_pct"]),
            nvol=volume["estimated"],
            rate=_fmt(volume["median_abs_rate_error_pct"]),
        ),
        "",
    ]
    out += _leak_lines(leaks, t)
    drift = report.get("drift")
    if drift:
        out += [
            "",
            t["drift"].format(
                n=drift["drift_faults"],
                longest=_fmt(drift["longest_station_incident_hours"]),
                limit=_fmt(drift["max_station_incident_hours"], 0),
                over=drift["station_incidents_over_max"],
                tap=_fmt(drift["longest_tap_incident_hours"]),
                after=drift["extractions_after_drift"],
                caught=drift["caught"],
                blocked=drift["blocked_at_start"],
                verdict=t["drift_met"] if drift["met"] else t["drift_missed"],
            ),
        ]
    parity = [(seed, report["per_seed"][str(seed)].get("live_matches_offline")) for seed in seeds]
    if any(p for _, p in parity):
        out += ["", f"## {t['parity']}", ""]
        for seed, check in parity:
            if check:
                verdict = t["same"] if check["same"] else t["differ"]
                counts = {k: check[k] for k in ("live", "offline", "only_live", "only_offline")}
                at_end = check.get("only_offline_at_end", 0)
                out.append("- " + t["parity_row"].format(seed=seed, verdict=verdict, at_end=at_end, **counts))
    if len(seeds) > 1:
        keys = list(report["targets"])
        out += ["", f"## {t['seed_table']}", ""]
        out += ["| " + t["seed"] + " | " + " | ".join(t[f"t_{k}"] for k in keys) + " |"]
        out += ["|---|" + "---|" * len(keys)]
        for seed in seeds:
            figures = report["per_seed"][str(seed)]["targets"]
            out.append(f"| {seed} | " + " | ".join(_shown(k, figures[k]["value"]) for k in keys) + " |")
    caught = [e for e in report.get("events", []) if e["event_type"] == "theft" and e["caught"]][:40]
    if caught:
        out += [
            "",
            f"## {t['detail']}",
            "",
            f"| {t['seed']} | {t['event']} | {t['segment']} | {t['size']} | {t['delay']} | {t['true_km']} | "
            f"{t['est_km']} | {t['true_vol']} | {t['est_vol']} |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for e in caught:
            estimate = e.get("estimate") or {}
            out.append(
                f"| {e.get('seed', '')} | {e['event_id']} | {e['segment']} | {_fmt(100 * e['magnitude'])} | "
                f"{_fmt(e['minutes_to_alarm'], 0)} | {_fmt(e['true_location_km'])} | "
                f"{_fmt(estimate.get('location_km'))} | {_fmt(e['true_volume_m3'])} | "
                f"{_fmt(estimate.get('volume_m3'))} |"
            )
    if plots:
        out += ["", f"## {t['plots']}", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    total = report.get("seconds", {}).get("total")
    if total is not None:
        out += ["", t["seconds"].format(s=total)]
    return "\n".join(out) + "\n"


# Axis labels and legends of the plots, per report language.
_PLOT_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "band_x": "theft size band, % of flow",
        "detected_y": "detected, %",
        "volume_x": "true extracted volume, m³",
        "size_x": "theft size, % of flow",
        "minutes_y": "minutes to alarm (missed at 0)",
        "location_x": "true location, % of segment from upstream",
        "location_y": "estimated location, % of segment",
        "true_volume_x": "true volume, m³",
        "volume_y": "estimated volume, m³ (last alert)",
        "caught": "caught",
        "missed": "missed",
        "service": "service",
        "autoencoder": "autoencoder",
        "reference_flow_balance": "reference flow balance",
    },
    "es": {
        "band_x": "banda de tamaño de la toma, % del caudal",
        "detected_y": "detectadas, %",
        "volume_x": "volumen extraído real, m³",
        "size_x": "tamaño de la toma, % del caudal",
        "minutes_y": "minutos hasta la alarma (no detectadas en 0)",
        "location_x": "ubicación real, % del tramo desde aguas arriba",
        "location_y": "ubicación estimada, % del tramo",
        "true_volume_x": "volumen real, m³",
        "volume_y": "volumen estimado, m³ (última alerta)",
        "caught": "detectada",
        "missed": "no detectada",
        "service": "servicio",
        "autoencoder": "autocodificador",
        "reference_flow_balance": "balance de caudal de referencia",
    },
}


def write_plots(report: Mapping[str, Any], out: Path, lang: str = "en") -> list[Path]:
    """detection_by_band, detection_by_volume, time_to_alarm, location_estimates, volume_estimates,
    labelled in ``lang``."""
    labels = _PLOT_TEXT.get(lang, _PLOT_TEXT["en"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    thefts = [e for e in report["events"] if e["event_type"] == "theft" and e["magnitude"] is not None]

    def save(figure: Any, name: str) -> None:
        figure.tight_layout()
        path = out / name
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)

    rows = report.get("rows", {})
    figure, axis = plt.subplots(figsize=(7, 3.8))
    bands = list(report["detection_rate_by_band"])
    shown = [("service", "tab:blue"), ("autoencoder", "tab:orange"), ("reference_flow_balance", "tab:grey")]
    width = 0.8 / len(shown)
    for index, (row, colour) in enumerate(shown):
        rates = rows.get(row, {}).get("detection_rate_by_band")
        if not rates:
            continue
        axis.bar(
            [b + (index - 1) * width for b in range(len(bands))],
            [100 * (rates.get(band) or 0.0) for band in bands],
            width,
            color=colour,
            label=labels.get(row, row),
        )
    axis.set_xticks(range(len(bands)), bands)
    axis.axhline(85, color="grey", linestyle="--", linewidth=1)
    axis.set_ylim(0, 105)
    axis.set_xlabel(labels["band_x"])
    axis.set_ylabel(labels["detected_y"])
    axis.legend(fontsize=8)
    save(figure, "detection_by_band.png")

    figure, axis = plt.subplots(figsize=(6, 3.5))
    volumes = list(report["detection_rate_by_volume"])
    axis.bar(
        volumes, [100 * (report["detection_rate_by_volume"][v] or 0.0) for v in volumes], color="tab:blue"
    )
    axis.axhline(90, color="grey", linestyle="--", linewidth=1)
    axis.set_ylim(0, 105)
    axis.set_xlabel(labels["volume_x"])
    axis.set_ylabel(labels["detected_y"])
    save(figure, "detection_by_volume.png")

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for caught, colour, name in ((True, "tab:green", labels["caught"]), (False, "tab:red", labels["missed"])):
        chosen = [e for e in thefts if bool(e["caught"]) is caught]
        axis.scatter(
            [100 * e["magnitude"] for e in chosen],
            [e["minutes_to_alarm"] if caught else 0 for e in chosen],
            c=colour,
            label=name,
            s=18,
        )
    axis.set_xscale("log")
    axis.axhline(15, color="grey", linestyle="--", linewidth=1)
    axis.set_xlabel(labels["size_x"])
    axis.set_ylabel(labels["minutes_y"])
    axis.legend()
    save(figure, "time_to_alarm.png")

    located = [
        e
        for e in thefts
        if e.get("estimate") and e["estimate"].get("location_km") is not None and e["segment_length_km"]
    ]
    if located:
        figure, axis = plt.subplots(figsize=(5, 5))
        axis.errorbar(
            [100 * e["true_location_km"] / e["segment_length_km"] for e in located],
            [100 * e["estimate"]["location_km"] / e["segment_length_km"] for e in located],
            yerr=[
                100 * (e["estimate"].get("location_sigma_km") or 0.0) / e["segment_length_km"]
                for e in located
            ],
            fmt="o",
            markersize=4,
            alpha=0.7,
        )
        axis.plot([0, 100], [0, 100], color="grey", linewidth=1)
        axis.set_xlabel(labels["location_x"])
        axis.set_ylabel(labels["location_y"])
        save(figure, "location_estimates.png")

    estimated = [e for e in thefts if e.get("estimate") and e["estimate"].get("volume_m3") is not None]
    if estimated:
        figure, axis = plt.subplots(figsize=(5, 5))
        truth = [e["true_volume_m3"] for e in estimated]
        guess = [e["estimate"]["volume_m3"] for e in estimated]
        axis.scatter(truth, guess, s=18)
        top = max(*truth, *guess, 1.0)
        axis.plot([0, top], [0, top], color="grey", linewidth=1)
        axis.set_xscale("symlog")
        axis.set_yscale("symlog")
        axis.set_xlabel(labels["true_volume_x"])
        axis.set_ylabel(labels["volume_y"])
        save(figure, "volume_estimates.png")
    return paths


def write_outputs(report: dict[str, Any], out: Path, lang: str = "en") -> None:
    plots = write_plots(report, out / "plots", lang)
    names = [str(p.relative_to(out)) for p in plots]
    report["plots"] = names
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.md").write_text(render_markdown(report, names, lang))
