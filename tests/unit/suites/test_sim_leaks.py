"""The leak scenario's figures: caught by size, time and size at alarm, and its lines in report.md."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from evaluation.suites import sim_leaks
from evaluation.suites.sim_leaks import LeakRun
from evaluation.suites.sim_report import _leak_lines
from evaluation.suites.sim_segments import Tally
from tests.unit.suites.test_sim_segments import judge, tap_alert, theft


def leak_run() -> LeakRun:
    events = [
        # Grows to 1.5 % over 600 min; alarm 300 min in: it had reached 0.75 % of flow.
        theft("grown", 0, 600, 0.015, kind="leak"),
        theft("small", 1000, 1600, 0.003, kind="leak"),  # never alarmed
        theft("medium", 2000, 2400, 0.008, kind="leak"),  # alarm 100 min in: 0.2 %
    ]
    alerts = [tap_alert("a", 300), tap_alert("b", 2100), tap_alert("fa", 5000)]
    return LeakRun(Tally.of(judge(events, alerts), station_months=2.0, autoencoder=False), len(alerts))


def test_leaks_are_judged_by_final_size_with_the_size_they_had_reached_at_the_alarm() -> None:
    figures = sim_leaks.figures([leak_run()], [1004])
    assert (figures["events"], figures["caught"]) == (3, 2)
    assert figures["median_minutes_to_alarm"] == pytest.approx(200.0)
    assert figures["median_size_at_alarm_pct_of_flow"] == pytest.approx((0.75 + 0.2) / 2)
    bands = figures["by_final_size_pct_of_flow"]
    assert (bands["<0.5"]["events"], bands["<0.5"]["caught"]) == (1, 0)
    assert (bands["0.5-1"]["caught"], bands["0.5-1"]["median_minutes_to_alarm"]) == (1, 100.0)
    assert (bands["1-2"]["caught"], bands["1-2"]["median_minutes_to_alarm"]) == (1, 300.0)
    # The alarm at minute 5000 explains no leak: one false alarm in two station-months.
    assert figures["false_alarms_per_station_month_all"] == pytest.approx(0.5)
    assert figures["scenario"]["thefts"] == 0 and figures["scenario"]["seeds"] == [1004]


def test_report_md_says_what_the_leak_scenario_is_and_its_bands() -> None:
    figures = sim_leaks.figures([leak_run()], [1004])
    english = "\n".join(_leak_lines(figures, _texts("en")))
    assert "2 of 3 caught, median 200 min to alarm" in english
    assert "thefts off and 3 leaks per segment-month" in english
    assert "- final size <0.5 % of flow: 0 of 1 caught" in english
    spanish = "\n".join(_leak_lines(figures, _texts("es")))
    assert "2 de 3 detectadas" in spanish


def test_a_run_without_the_scenario_keeps_the_short_line() -> None:
    line = _leak_lines({"events": 0, "caught": 0, "median_minutes_to_alarm": None}, _texts("en"))
    assert line == ["Leaks: 0 of 0 caught, median — min to alarm."]


def _texts(lang: str) -> Mapping[str, str]:
    from evaluation.suites import sim_report

    return sim_report.words("sim", lang)
