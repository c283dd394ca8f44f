"""report.md of the SKAB suite, in English or Spanish, from the report dictionary alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trainer.report_templates import load_sections

# The prose, one file per language: templates/skab.<lang>.md.
_PACKAGE = "evaluation.suites"


def _num(value: object) -> str:
    """Numbers as the report holds them (already rounded); a dash for missing ones."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(_num(cell) if not isinstance(cell, str) else cell for cell in row) + " |"
        for row in rows
    ]
    return [*lines, ""]


def render_markdown(report: Mapping[str, Any], plots: Sequence[str], lang: str) -> str:
    """The human-readable report; every number comes from ``report``."""
    t = load_sections(_PACKAGE, "skab", lang)
    ours, published, settings = report["ours"], report["published"], report["settings"]
    lines = [f"# {t['title']}", "", t["data"].format(root=report["data_dir"]), ""]
    if report["quick"]:
        lines += [t["quick"].format(n=len(report["files"])), ""]
    lines += [t["protocol"], ""]
    lines += [
        t["method"].format(
            sensors=", ".join(settings["sensors"]),
            w=settings["smoothing"],
            factor=settings["factor"],
            hold=settings["hold"],
        ),
        "",
    ]

    lines += [f"## {t['outliers']}", ""]
    header = [
        t["algorithm"],
        "F1",
        "FAR %",
        "MAR %",
        f"F1 ({t['recomputed']})",
        "FAR %",
        "MAR %",
        "TP / FP / FN / TN",
    ]
    rows: list[list[object]] = [
        [
            t["ours"],
            ours["f1"],
            ours["far"],
            ours["mar"],
            ours["f1"],
            ours["far"],
            ours["mar"],
            f"{ours['tp']} / {ours['fp']} / {ours['fn']} / {ours['tn']}",
        ]
    ]
    for name, entry in published.items():
        again = entry.get("recomputed")
        counts = f"{again['tp']} / {again['fp']} / {again['fn']} / {again['tn']}" if again else "–"
        rows.append(
            [
                name,
                entry["f1"],
                entry["far"],
                entry["mar"],
                again and again["f1"],
                again and again["far"],
                again and again["mar"],
                counts,
            ]
        )
    lines += _table(header, rows)
    target = report["target"]
    lines += [
        t["target"].format(
            f1=target["f1_min"], far=target["far_max"], met=t["yes"] if report["target_met"] else t["no"]
        ),
        "",
    ]

    lines += [f"## {t['events']}", ""]
    header = [t["algorithm"], t["caught"], t["raised"], t["median_delay"], t["p90_delay"], t["false_runs"]]
    rows = []
    for name, block in [
        (t["ours"], ours),
        *((n, e["recomputed"]) for n, e in published.items() if "recomputed" in e),
    ]:
        events = block["events"]
        rows.append(
            [
                name,
                f"{events['caught']} / {events['segments']}",
                events["caught_by_alarm_raised_inside"],
                events["median_delay_s"],
                events["p90_delay_s"],
                events["false_alarm_runs"],
            ]
        )
    lines += _table(header, rows)

    lines += [f"## {t['nab']}", ""]
    header = [
        t["algorithm"],
        "NAB standard",
        "LowFP",
        "LowFN",
        t["missed"],
        t["fps"],
        f"({t['printed']}: std / LowFP / LowFN)",
    ]
    rows = [
        [
            t["ours"],
            ours["nab"]["standard"],
            ours["nab"]["low_fp"],
            ours["nab"]["low_fn"],
            ours["nab"]["missed"],
            ours["nab"]["false_positives"],
            "–",
        ]
    ]
    for name, entry in published.items():
        if "recomputed" not in entry:
            continue
        nab, printed = entry["recomputed"]["nab"], entry.get("nab")
        shown = f"{printed['standard']} / {printed['low_fp']} / {printed['low_fn']}" if printed else "–"
        rows.append(
            [
                name,
                nab["standard"],
                nab["low_fp"],
                nab["low_fn"],
                nab["missed"],
                nab["false_positives"],
                shown,
            ]
        )
    lines += _table(header, rows)

    calibration = report["calibration"]
    lines += [
        f"## {t['calibration']}",
        "",
        t["calibration_rule"].format(rule=calibration["rule"], factor=calibration["chosen_factor"]),
        "",
    ]
    if calibration["forward_far_pct_by_factor"]:
        lines += _table(
            [t["factor"], t["forward_far"]],
            [[k, v] for k, v in calibration["forward_far_pct_by_factor"].items()],
        )
    normal = report["false_alarms_on_normal_data"]
    lines += [
        t["normal_far"].format(fwd=normal["training_rows_forward_pct"], af=normal["anomaly_free_pieces_pct"]),
        "",
    ]
    lines += [t["honesty"].format(w=settings["smoothing"], hold=settings["hold"]), ""]
    if report["sensitivity_post_hoc"]:
        lines += [f"### {t['sensitivity']}", ""]
        lines += _table(
            [t["variant"], t["factor"], "F1", "FAR %", "MAR %"],
            [
                [row["variant"], float(row["factor"]), row["f1"], row["far"], row["mar"]]
                for row in report["sensitivity_post_hoc"]
            ],
        )

    lines += [f"## {t['baselines']}", ""]
    base = report["baselines"]
    lines += _table(
        ["", "F1", "FAR %", "MAR %"],
        [
            [
                t["baseline_all"],
                base["all_anomalous"]["f1"],
                base["all_anomalous"]["far"],
                base["all_anomalous"]["mar"],
            ],
            [
                t["baseline_pos"],
                base["row_position_570_969"]["f1"],
                base["row_position_570_969"]["far"],
                base["row_position_570_969"]["mar"],
            ],
        ],
    )
    lines += [t["baseline_note"], ""]

    lines += [f"## {t['per_file']}", ""]
    lines += _table(
        [t["file"], "F1", "FAR %", "MAR %", t["threshold"], t["caught"], t["delay"], t["false_runs"]],
        [
            [
                r["file"],
                r["f1"],
                r["far"],
                r["mar"],
                r["threshold"],
                (t["yes"] if r["caught"] else t["no"]) if r["caught"] is not None else "–",
                r["delay_s"],
                r["false_alarm_runs"],
            ]
            for r in report["per_file"]
        ],
    )

    lines += [f"## {t['plots']}", ""] + [f"![{name}](plots/{name})" for name in plots] + [""]
    lines += [f"## {t['notes']}", "", t["note_mscred"], "", t["seconds"].format(s=report["seconds"]), ""]
    return "\n".join(lines)
