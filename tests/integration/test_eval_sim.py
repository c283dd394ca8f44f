"""``centinela evaluate sim --quick`` end to end on the real broker: simulate, train, replay, the live
detector, the alerts topic, the join. About 1.5 minutes (TensorFlow trains a tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from centinela.suites import sim
from centinela.suites.sim_events import BANDS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_quick_sim_suite_runs_through_the_live_path(kafka_bootstrap: str, tmp_path: Path) -> None:
    report = sim.run(out=tmp_path, quick=True, lang="es", bootstrap=kafka_bootstrap)

    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["suite"] == "sim" and on_disk["quick"] is True
    assert set(on_disk["detection_rate_by_band"]) == set(BANDS)
    for key in (
        "median_minutes_to_alarm_by_band",
        "false_alarms_per_station_month",
        "smallest_tap_detected_90pct",
    ):
        assert key in on_disk
    # Every reading of the test period went through Kafka and the service scored its windows.
    readings = sim.QUICK.stations * sim.QUICK.test_days * 24 * 60
    assert report["replay"]["delivered"] >= 0.95 * readings
    assert report["window_level"]["windows"] >= 0.9 * readings / 5
    assert set(report["operating_points"]) == {sim.TRAINED, sim.BUDGET}
    events = report["events"]
    assert events, "the quick scenario must contain thefts in the test period"
    for event in events:
        assert event["caught"] == (event["minutes_to_alarm"] is not None)
        assert event["true_volume_m3"] > 0
        if event["caught"]:
            assert event["minutes_to_alarm"] > 0
    assert "# Centinela con datos simulados" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "plots" / "detection_by_band.png").stat().st_size > 1000
