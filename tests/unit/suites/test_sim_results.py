"""``centinela results``: the README section comes from the report files and only the marked part changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.errors import ConfigError
from devtools.results import END, START, render, replace_section


def write(path: Path, content: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def test_render_shows_each_suite_and_bench_from_their_files(tmp_path: Path) -> None:
    write(
        tmp_path / "eval/seed/report.json",
        {"models": {"autoencoder": {"mode": "unsupervised", "precision": 0.5, "recall": 0.25, "f1": 0.333}}},
    )
    write(
        tmp_path / "eval/sim/report.json",
        {
            "mode": "live",
            "seeds": [7, 8, 9],
            "detection_rate_by_band": {"0.5-1": 0.0, "5-15": 1.0},
            "median_minutes_to_alarm_by_band": {"5-15": 12.0},
            "events_by_band": {"5-15": {"events": 7, "caught": 7}},
            "targets": {
                "taps_ge_2pct_detected": {"value": 0.9, "target": 0.85, "met": True},
                "false_alarms_per_station_month": {"value": 2.5, "target": 1.0, "met": False},
            },
            "false_alarms_per_station_month_all": 3.25,
            "smallest_tap_detected_90pct": 0.04,
            "rows": {
                "autoencoder": {"detection_rate_by_band": {"5-15": 0.25}, "taps_ge_2pct_detected": 0.1},
            },
            "reference_flow_balance": {
                "detection_rate_by_band": {"5-15": 0.5},
                "false_alarms_per_station_month": 0.0,
                "smallest_tap_detected_90pct": None,
            },
        },
    )
    write(
        tmp_path / "eval/calibration/report.json",
        {
            "replicates": 10,
            "default_rule": "best_f1_every_threshold",
            "test_f1": {
                "best_f1_every_threshold": {
                    "mean": 0.9,
                    "p10": 0.8,
                    "p90": 1.0,
                    "share_at_least_target": 0.7,
                },
                "best_possible": {"mean": 0.95, "p10": 0.9, "p90": 1.0, "share_at_least_target": 0.9},
            },
            "real_split": {"best_f1_every_threshold": 0.81, "best_possible": 0.87},
            "autoencoder": {
                "replicates": 3,
                "mean": {"autoencoder_f1": 0.88, "ceiling_f1": 0.9},
                "share_at_least_target": 2 / 3,
            },
        },
    )
    write(
        tmp_path / "bench/replay.json",
        {
            "name": "replay",
            "machine": {"cores": 2, "cpu": "test"},
            "figures": {"readings_per_s": 250000.0, "other": 1.0},
            "baseline": {"bare_produce_per_s": 300000.0},
            "ratio": {"readings_vs_bare": 0.83},
            "targets": {"readings_per_s": ">= 200,000"},
        },
    )
    text = render(tmp_path / "eval", tmp_path / "bench")
    assert "| autoencoder | unsupervised | 0.500 | 0.250 | 0.333 | — | — |" in text
    assert "Not run yet: `centinela evaluate skab" in text
    assert "| best_f1_every_threshold | 0.900 | 0.800 | 1.000 | 70 % | 0.810 |" in text
    assert "| best_possible | 0.950 | 0.900 | 1.000 | 90 % | 0.870 |" in text
    assert (
        "autoencoder on the first 3 of them: mean test F1 0.880 (ceiling detector on the same: 0.900), "
        in text
    )
    assert "≥ target on 67 %." in text
    assert "Mode: live; seeds 7, 8, 9." in text
    assert "| 5-15 | 7 | 100 % | 12 | — | 25 % | 50 % |" in text
    assert "| taps ≥ 2 % of flow caught (≥ 85 %) | 90 % | yes | 10 % | — |" in text
    assert "| false alarms per station-month, normal operation (≤ 1) | 2.5 | no | — | 0.0 |" in text
    assert "False alarms per station-month, every cause (≤ 1.5): 3.25." in text
    assert "Smallest tap detected 90 % of the time: 4 %." in text
    assert (
        "| replay | readings_per_s | 250,000 | bare_produce_per_s 300,000 | readings_vs_bare 0.83 |" in text
    )
    assert "| other |" not in text  # figures without a target stay in the JSON


def test_only_the_marked_part_of_the_readme_changes() -> None:
    readme = f"# Title\n\nintro\n\n{START}\nold table\n{END}\n\n## After\n"
    updated = replace_section(readme, "new table")
    assert updated == f"# Title\n\nintro\n\n{START}\nnew table\n{END}\n\n## After\n"
    with pytest.raises(ConfigError, match="results markers"):
        replace_section("# no markers\n", "x")


def test_the_sim_section_gives_the_leak_scenario_and_the_drift_figures(tmp_path: Path) -> None:
    leaks = {
        "scenario": {"leaks_per_segment_month": 3.0},
        "events": 26,
        "caught": 8,
        "median_minutes_to_alarm": 628.0,
        "median_size_at_alarm_pct_of_flow": 1.22,
        "false_alarms_per_station_month": 0.5,
        "by_final_size_pct_of_flow": {
            "<0.5": {"events": 10, "caught": 0},
            "1-2": {"events": 12, "caught": 7},
        },
    }
    drift = {
        "drift_faults": 4,
        "longest_station_incident_hours": 12.0,
        "max_station_incident_hours": 12.0,
        "extractions_after_drift": 9,
        "caught": 8,
        "blocked_at_start": 0,
    }
    write(tmp_path / "eval/sim/report.json", {"mode": "live", "seeds": [7], "leaks": leaks, "drift": drift})
    text = render(tmp_path / "eval", tmp_path / "bench")
    assert "8 of 26 caught (<0.5 %: 0/10, 1-2 %: 7/12 by final size), median 628 min" in text
    assert "thefts after a drift 9, 8 caught, 0 blocked" in text
