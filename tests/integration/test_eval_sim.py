"""``centinela evaluate sim --quick`` end to end on the real broker: simulate, calibrate the line, train,
replay, the live detector with the line, the alerts topic, the segment join. About 2 minutes
(TensorFlow trains a tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.suites import sim
from evaluation.suites.sim_events import BANDS
from evaluation.suites.sim_segments import TARGETS, VOLUME_BANDS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_quick_sim_suite_runs_through_the_live_path(kafka_bootstrap: str, tmp_path: Path) -> None:
    report = sim.run(out=tmp_path, quick=True, lang="es", bootstrap=kafka_bootstrap)

    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["suite"] == "sim" and on_disk["quick"] is True and on_disk["mode"] == "live"
    assert set(on_disk["detection_rate_by_band"]) == set(BANDS)
    assert set(on_disk["detection_rate_by_volume"]) == set(VOLUME_BANDS)
    assert set(on_disk["targets"]) == set(TARGETS)
    for target in on_disk["targets"].values():
        assert set(target) == {"value", "target", "met"}
    assert set(on_disk["per_seed"]) == {str(s) for s in sim.QUICK.seeds}
    seed = on_disk["per_seed"][str(sim.QUICK.seeds[0])]
    # The service ran with the line in its bundle, and every reading went through Kafka.
    assert seed["bundle"]["line"] is True and seed["bundle"]["autoencoder"] == "trained"
    readings = sim.QUICK.stations * sim.QUICK.test_days * 24 * 60
    assert seed["replay"]["delivered"] >= 0.95 * readings
    assert seed["window_level"]["windows"] >= 0.9 * readings / 5
    # The service published the segment alerts the offline oracle raises on the same readings (and
    # there are some: the quick line holds several taps of 2 % or more).
    assert seed["live_matches_offline"]["same"], seed["live_matches_offline"]
    assert seed["live_matches_offline"]["live"] > 0
    assert set(report["rows"]) >= {"service", "autoencoder", "reference_flow_balance"}
    events = report["events"]
    assert events, "the quick scenario must contain thefts in the test period"
    for event in events:
        assert event["caught"] == (event["minutes_to_alarm"] is not None)
        assert event["true_volume_m3"] > 0
        assert event["segment"] and ">" in event["segment"]
        if event["caught"]:
            assert event["minutes_to_alarm"] > 0
    assert "# Centinela con datos simulados" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "plots" / "detection_by_band.png").stat().st_size > 1000
