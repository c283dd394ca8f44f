"""``centinela results``: the README's results section, generated from the evaluation and benchmark files.

Reads ``out/eval/*/report.json`` (``centinela evaluate SUITE``) and ``bench/results/*.json``
(``centinela bench NAME``) and rewrites only the part of README.md between
``<!-- results:start -->`` and ``<!-- results:end -->``. Nothing is typed by hand: rerun the
commands, then this one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from detector.errors import ConfigError

START = "<!-- results:start -->"
END = "<!-- results:end -->"
SUITES = ("seed", "calibration", "skab", "sim")


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        number = float(value)
        if abs(number) >= 1000:
            return f"{number:,.0f}"
        return f"{number:.{digits}f}"
    return str(value)


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.0f} %"


def _load(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return loaded if isinstance(loaded, dict) else None


def seed_section(report: Mapping[str, Any]) -> list[str]:
    lines = [
        "| model | mode | precision | recall | F1 | ROC-AUC | AP |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, model in report.get("models", {}).items():
        cells = [model.get(k) for k in ("precision", "recall", "f1", "roc_auc", "average_precision")]
        lines.append(f"| {name} | {model.get('mode', '')} | " + " | ".join(_num(c) for c in cells) + " |")
    return lines


def calibration_section(report: Mapping[str, Any]) -> list[str]:
    rules = (report.get("default_rule"), "best_possible")
    real = report.get("real_split") or {}
    lines = [
        f"Ceiling detector (per-minute z-score, window maximum) on {report.get('replicates')} data sets "
        "drawn from the seed data's training split; test F1, threshold from validation:",
        "",
        "| rule | mean | p10 | p90 | share ≥ target | real split |",
        "|---|---|---|---|---|---|",
    ]
    for rule in rules:
        row = report.get("test_f1", {}).get(rule, {})
        lines.append(
            f"| {rule} | {_num(row.get('mean'))} | {_num(row.get('p10'))} | {_num(row.get('p90'))} | "
            f"{_pct(row.get('share_at_least_target'))} | {_num(real.get(rule))} |"
        )
    check = report.get("autoencoder") or {}
    if check.get("replicates"):
        mean = check.get("mean", {})
        lines += [
            "",
            f"The trainer's autoencoder on the first {check['replicates']} of them: mean test F1 "
            f"{_num(mean.get('autoencoder_f1'))} "
            f"(ceiling detector on the same: {_num(mean.get('ceiling_f1'))}), "
            f"≥ target on {_pct(check.get('share_at_least_target'))}.",
        ]
    return lines


def skab_section(report: Mapping[str, Any]) -> list[str]:
    lines = ["| algorithm | F1 | FAR, % | MAR, % |", "|---|---|---|---|"]
    ours = report.get("ours", {})
    lines.append(f"| **Centinela (ours)** | {_skab_cells(ours)} |")
    published = report.get("published", {})
    for name, row in published.items():
        values = row
        if isinstance(row, Mapping):
            values = row.get("recomputed") or row.get("printed") or row
        if not isinstance(values, Mapping):
            continue
        lines.append(f"| {name} | {_skab_cells(values)} |")
    return lines


def _skab_cells(row: Mapping[str, Any]) -> str:
    return f"{_num(row.get('f1'))} | {_num(row.get('far'), 2)} | {_num(row.get('mar'), 2)}"


SIM_TARGETS = {
    "taps_ge_2pct_detected": "taps ≥ 2 % of flow caught (≥ 85 %)",
    "taps_ge_2pct_30min_detected": "taps ≥ 2 % lasting ≥ 30 min caught (≥ 95 %)",
    "thefts_ge_8m3_detected": "thefts taking ≥ 8 m³ caught (≥ 90 %)",
    "median_minutes_to_alarm_ge_2pct": "median minutes to alarm, taps ≥ 2 % (≤ 15)",
    "false_alarms_per_station_month": "false alarms per station-month, normal operation (≤ 1)",
    "location_median_error_pct_of_segment": "location: median error, % of segment (≤ 10)",
    "volume_median_abs_error_pct": "volume: median absolute error, % (≤ 15)",
}
SIM_RATES = ("taps_ge_2pct_detected", "taps_ge_2pct_30min_detected", "thefts_ge_8m3_detected")


def sim_section(report: Mapping[str, Any]) -> list[str]:
    """The line-aware service (pooled over the seeds) beside the autoencoder alone and the reference."""
    rows = report.get("rows") or {}
    autoencoder = rows.get("autoencoder") or {}
    reference = report.get("reference_flow_balance") or {}
    counts = report.get("events_by_band", {})
    lines = [
        f"Mode: {report.get('mode', 'live')}; seeds {', '.join(str(s) for s in report.get('seeds', []))}.",
        "",
        "| theft size, % of flow | thefts | service: detected | median min to alarm | p90 min "
        "| autoencoder alone: detected | flow-balance reference: detected |",
        "|---|---|---|---|---|---|---|",
    ]
    for band, rate in report.get("detection_rate_by_band", {}).items():
        n = counts.get(band, {}).get("events", "—")
        median = report.get("median_minutes_to_alarm_by_band", {}).get(band)
        p90 = report.get("p90_minutes_to_alarm_by_band", {}).get(band)
        ae_rate = autoencoder.get("detection_rate_by_band", {}).get(band)
        ref_rate = reference.get("detection_rate_by_band", {}).get(band)
        lines.append(
            f"| {band} | {n} | {_pct(rate)} | {_num(median, 0)} | {_num(p90, 0)} | "
            f"{_pct(ae_rate)} | {_pct(ref_rate)} |"
        )
    lines += [
        "",
        "| target | service | met | autoencoder alone | flow-balance reference |",
        "|---|---|---|---|---|",
    ]
    compared = {
        "taps_ge_2pct_detected": "taps_ge_2pct_detected",
        "median_minutes_to_alarm_ge_2pct": "median_minutes_to_alarm_ge_2pct",
        "false_alarms_per_station_month": "false_alarms_per_station_month",
    }
    for key, target in report.get("targets", {}).items():

        def shown(value: Any, key: str = key) -> str:
            return _pct(value) if key in SIM_RATES else _num(value, 1)

        other = compared.get(key)
        ae_value = shown(autoencoder.get(other)) if other and autoencoder else "—"
        ref_value = shown(reference.get(other)) if other and reference else "—"
        name, met = SIM_TARGETS.get(key, key), _num(bool(target.get("met")))
        lines.append(f"| {name} | {shown(target.get('value'))} | {met} | {ae_value} | {ref_value} |")
    everything = report.get("false_alarms_per_station_month_all")
    if everything is not None:
        lines += ["", f"False alarms per station-month, every cause (≤ 1.5): {_num(everything, 2)}."]
    smallest = report.get("smallest_tap_detected_90pct")
    lines.append(f"Smallest tap detected 90 % of the time: {_pct(smallest) if smallest else 'none'}.")
    lines += _leak_and_drift_lines(report)
    lines.append(
        "The service is the live detector with the line (segment incidents) and the per-station "
        "autoencoder; the flow-balance reference is the suite's offline segment balance, not the service "
        "(see docs/evaluation-sim.md)."
    )
    return lines


def _leak_and_drift_lines(report: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    leaks = report.get("leaks") or {}
    scenario = leaks.get("scenario")
    if scenario and leaks.get("events"):
        bands = ", ".join(
            f"{band} %: {row['caught']}/{row['events']}"
            for band, row in (leaks.get("by_final_size_pct_of_flow") or {}).items()
        )
        lines.append(
            f"Leaks (own scenario, {scenario['leaks_per_segment_month']:g} per segment-month, thefts off): "
            f"{leaks['caught']} of {leaks['events']} caught ({bands} by final size), median "
            f"{_num(leaks.get('median_minutes_to_alarm'), 0)} min to alarm, at a median "
            f"{_num(leaks.get('median_size_at_alarm_pct_of_flow'), 2)} % of flow; false alarms "
            f"{_num(leaks.get('false_alarms_per_station_month'), 2)} per station-month."
        )
    drift = report.get("drift") or {}
    if drift:
        lines.append(
            f"Drift faults: {drift['drift_faults']}; longest station incident "
            f"{_num(drift.get('longest_station_incident_hours'), 1)} h (maximum "
            f"{_num(drift.get('max_station_incident_hours'), 0)} h); thefts after a drift "
            f"{drift['extractions_after_drift']}, {drift['caught']} caught, "
            f"{drift['blocked_at_start']} blocked."
        )
    return lines


def bench_section(results: list[dict[str, Any]]) -> list[str]:
    lines = ["| bench | figure | value | baseline (same run) | ratio | target |", "|---|---|---|---|---|---|"]
    for result in results:
        name = result.get("name", "?")
        baseline = result.get("baseline", {})
        ratios = result.get("ratio", {})
        targets = result.get("targets", {})
        baseline_text = ", ".join(f"{k} {_num(v, 1)}" for k, v in baseline.items()) or "—"
        ratio_text = ", ".join(f"{k} {_num(v, 2)}" for k, v in ratios.items()) or "—"
        figures = result.get("figures", {})
        # The headline figures are those with a target; the rest stay in bench/results/NAME.json.
        shown = [f for f in figures if f in targets] or list(figures)[:2]
        for index, figure in enumerate(shown):
            value = figures[figure]
            lines.append(
                f"| {name if index == 0 else ''} | {figure} | {_num(value, 1)} | "
                f"{baseline_text if index == 0 else ''} | {ratio_text if index == 0 else ''} | "
                f"{targets.get(figure, '')} |"
            )
    return lines


def render(eval_dir: Path, bench_dir: Path) -> str:
    """The Markdown between the markers."""
    sections = {
        "seed": seed_section,
        "calibration": calibration_section,
        "skab": skab_section,
        "sim": sim_section,
    }
    titles = {
        "seed": "Seed data set (test split, thresholds from validation)",
        "calibration": "Seed data set: how far a threshold from validation carries (same-size data sets)",
        "skab": "SKAB (published protocol, beside the published leaderboard)",
        "sim": "Simulated lines: the line-aware service (issue 18 targets)",
    }
    lines = [
        "",
        "_Generated by `centinela results` from `out/eval/*/report.json` and `bench/results/*.json`; "
        "do not edit by hand._",
        "",
    ]
    for suite in SUITES:
        report = _load(eval_dir / suite / "report.json")
        lines.append(f"### {titles[suite]}")
        lines.append("")
        if report is None:
            lines += [f"Not run yet: `centinela evaluate {suite} --out {eval_dir / suite}`.", ""]
            continue
        if report.get("quick"):
            lines += ["_Quick mode (CI sizes): not the full-size figures._", ""]
        lines += sections[suite](report)
        lines += ["", f"Command: `centinela evaluate {suite} --out {eval_dir / suite}`.", ""]
    benches = [b for b in (_load(p) for p in sorted(bench_dir.glob("*.json"))) if b is not None]
    lines += ["### Benchmarks", ""]
    if benches:
        machine = benches[0].get("machine", {})
        lines += bench_section(benches)
        lines += [
            "",
            f"Machine: {machine.get('cores', '?')} cores, {machine.get('cpu', '?')}. "
            "Command: `centinela bench all` (medians of at least 3 repetitions; every figure in "
            "`bench/results/NAME.json`).",
            "",
        ]
    else:
        lines += ["Not run yet: `centinela bench all`.", ""]
    return "\n".join(lines)


def replace_section(readme_text: str, body: str) -> str:
    """``readme_text`` with the part between the markers replaced; ``ConfigError`` if they are missing."""
    start = readme_text.find(START)
    end = readme_text.find(END)
    if start < 0 or end < 0 or end < start:
        raise ConfigError(
            f"README has no results markers: add a line {START} and a line {END} where the section goes"
        )
    return readme_text[: start + len(START)] + "\n" + body + "\n" + readme_text[end:]


def register(app: typer.Typer) -> None:
    @app.command("results")
    def results(
        readme: Path = typer.Option(Path("README.md"), "--readme", help="The README to update."),
        eval_dir: Path = typer.Option(
            Path("out/eval"), "--eval-dir", help="Where the evaluation reports are."
        ),
        bench_dir: Path = typer.Option(
            Path("bench/results"), "--bench-dir", help="Where the bench results are."
        ),
        print_only: bool = typer.Option(
            False, "--print", help="Print the section instead of writing the README."
        ),
    ) -> None:
        """Regenerate the README's results section from the evaluation reports and bench results."""
        body = render(eval_dir, bench_dir)
        if print_only:
            typer.echo(body)
            return
        try:
            text = readme.read_text()
        except OSError as error:
            raise ConfigError(f"cannot read {readme}: {error}") from error
        updated = replace_section(text, body)
        if updated != text:
            readme.write_text(updated)
        typer.echo(
            f"updated the results section of {readme}" if updated != text else f"{readme} already up to date"
        )
