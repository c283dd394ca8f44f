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
from trainer.report_templates import load_sections

# The prose, one file per language: templates/sim.<lang>.md and sim_plots.<lang>.md. A language
# without templates reads English.
_PACKAGE = "evaluation.suites"
_LANGUAGES = ("en", "es")


def words(template: str, lang: str) -> Mapping[str, str]:
    """The sections of ``templates/<template>.<lang>.md``; English for a language it has none in."""
    return load_sections(_PACKAGE, template, lang if lang in _LANGUAGES else "en")


PERCENT_TARGETS = ("taps_ge_2pct_detected", "taps_ge_2pct_30min_detected", "thefts_ge_8m3_detected")
SUBSET_OF = {
    "taps_ge_2pct_detected": "taps_ge_2pct",
    "taps_ge_2pct_30min_detected": "taps_ge_2pct_30min",
    "thefts_ge_8m3_detected": "thefts_ge_8m3",
}


def _leak_lines(leaks: dict[str, Any], t: Mapping[str, str]) -> list[str]:
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
    t = words("sim", lang)
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


def write_plots(report: Mapping[str, Any], out: Path, lang: str = "en") -> list[Path]:
    """detection_by_band, detection_by_volume, time_to_alarm, location_estimates, volume_estimates,
    labelled in ``lang``."""
    labels = words("sim_plots", lang)
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
