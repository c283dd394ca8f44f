"""report.md says, for every target not met, how far and why, in English and Spanish."""

from __future__ import annotations

from typing import Any

from evaluation.suites import sim_segments
from evaluation.suites.sim_report import render_markdown
from evaluation.suites.sim_segments import Tally
from tests.unit.suites.test_sim_segments import judge, tap_alert, theft


def report() -> dict[str, Any]:
    events = [
        theft("caught", 0, 100, 0.05, volume=20.0),
        theft("missed-small", 1000, 1020, 0.03, volume=2.0),
        theft("missed-long", 2000, 2300, 0.04, volume=30.0),
    ]
    alerts = [tap_alert("a", 30, volume=20.0, location=25.0), tap_alert("fa", 5000)]
    figures = sim_segments.figures(Tally.of(judge(events, alerts), station_months=0.5))
    tally_events = [e | {"seed": 7} for e in judge(events, alerts).events]
    return figures | {
        "quick": False,
        "path": "live",
        "broker": "Kafka at test",
        "seeds": [7],
        "sizes": {
            "stations": 6,
            "theft_per_segment_month": 8.0,
            "train_days": 60,
            "test_days": 60,
            "model_units": [16, 8],
            "epochs": 4,
            "autoencoder_seeds": [7],
        },
        "per_seed": {"7": {"targets": figures["targets"], "realism": {"line_pack": True}}},
        "rows": {"service": {"taps_ge_2pct_detected": 1 / 3}},
        "events": tally_events,
        "false_alarms": [f | {"seed": 7} for f in judge(events, alerts).false_alarms],
        "seconds": {"total": 12.5},
    }


def test_unmet_targets_say_how_far_and_what_was_missed() -> None:
    text = render_markdown(report(), ["plots/detection_by_band.png"], "en")
    assert "| taps ≥ 2 % of flow caught | 33 % | ≥ 85 % | no | 7: 33 % |" in text
    assert "**taps ≥ 2 % of flow caught**: 33 % against 85 %, 52 pts short (2 of 3 missed)" in text
    assert "1 of them took under 4 m³" in text
    # One unexplained tap false alarm in half a station-month: one over the budget, on its segment.
    assert "**false alarms per station-month, normal operation**: 2.00 against ≤ 1, 1.00 over." in text
    assert "Tap incidents by cause: unexplained 1" in text
    assert "Tap false alarms by segment (every cause): EST-01>EST-02 (seed 7) 1." in text
    assert "![detection_by_band](plots/detection_by_band.png)" in text
    assert "line_pack = True" in text
    # One location estimate, at 25 km of a 50 km segment for a tap at 25 km: met, so no gap line.
    assert "**location, median error" not in text


def test_the_spanish_report_has_the_same_tables() -> None:
    english = render_markdown(report(), [], "en")
    spanish = render_markdown(report(), [], "es")
    assert "# Centinela con datos simulados" in spanish
    assert "tomas ≥ 2 % del flujo detectadas" in spanish
    assert spanish.count("|") == english.count("|")


def test_the_plots_speak_the_report_s_language() -> None:
    from evaluation.suites.sim_report import words

    english, spanish = words("sim_plots", "en"), words("sim_plots", "es")
    assert set(spanish) == set(english)  # nothing left in English by omission
    assert all(spanish[key] != english[key] for key in english if key != "autoencoder")
    assert spanish["detected_y"] == "detectadas, %"
