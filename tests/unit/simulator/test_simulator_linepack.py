"""Line pack: segments pack and unpack with their pressure, and the balance shows it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from simulator import Event, SimulationConfig, simulate
from simulator.batches import PRODUCTS
from simulator.line import draw_line
from simulator.linepack import (
    MAX_PACK_RATE,
    line_pack_record,
    pack_target_m3h,
    wall_compressibility_per_gpa,
)
from simulator.writer import write_outputs
from tests.unit.simulator.simulator_helpers import perfect, with_scripted

STOP_START, STOP_END = 400, 430  # station EST-02 stands for 30 minutes


def pump_stop_line(line_pack: bool = True) -> SimulationConfig:
    stop = Event(
        "transient",
        "pump_stop",
        STOP_START,
        STOP_END + 300,
        (1, 2, 3),
        station=1,
        magnitude=float(STOP_END - STOP_START),
        unit="minutes_stopped",
        effect_end=STOP_END,
    )
    config = perfect(SimulationConfig(stations=4, days=1, seed=3).quiet())
    return dataclasses.replace(with_scripted(config, stop), line_pack=line_pack)


def test_effective_bulk_modulus_adds_the_wall_to_the_product() -> None:
    config = SimulationConfig()
    wall = wall_compressibility_per_gpa(config)
    assert wall == pytest.approx(0.3048 / (200.0 * 0.008))
    record = line_pack_record(config, draw_line(config, np.random.default_rng(0)))
    k_eff = {name: values[0] for name, values in record["k_eff_gpa"].items()}
    assert k_eff["gasoline"] < k_eff["jet"] < k_eff["diesel"]
    for product in PRODUCTS:  # the wall softens every product, 1/K_eff = 1/K + D/(E e)
        assert k_eff[product.name] == pytest.approx(1 / (1 / product.bulk_modulus_gpa + wall), abs=1e-4)
        assert 0.8 < k_eff[product.name] < product.bulk_modulus_gpa


def test_a_pump_stop_unpacks_its_segment_into_the_next_tank_and_the_restart_packs_it_again() -> None:
    result = simulate(pump_stop_line())
    pack = result.pack_m3h[:, 1]
    capacity = result.pack_capacity_m3_per_bar[:, 1]
    truth = result.truth
    inlet_drop = truth["pressure"][STOP_START - 5, 1] - truth["pressure"][STOP_START + 5, 1]
    assert inlet_drop > 20  # the segment falls to its settle-out pressure
    given_back = -pack[STOP_START - 2 : STOP_START + 10].sum() / 60
    # Mean pressure falls by half the inlet's drop (the arrival end stays at the tank's head).
    assert given_back == pytest.approx(capacity[STOP_START] * inlet_drop / 2, rel=0.05)
    assert 4 < given_back < 15  # m3: minutes of a small tap
    # The restart packs it again, more than it gave: the tank filled while the pump stood, so the
    # station restarts above its old flow, at a higher pressure.
    mean_bar = result.segment_mean_bar[:, 1]
    taken_again = pack[STOP_END - 1 : STOP_END + 30].sum() / 60
    rise = mean_bar[STOP_END + 29] - mean_bar[STOP_END - 2]
    assert taken_again == pytest.approx(capacity[STOP_END] * rise, rel=0.05)
    assert taken_again > given_back
    # No faster than the nominal flow, and never more than what enters the segment.
    assert np.abs(pack).max() <= MAX_PACK_RATE * result.config.nominal_flow + 1e-9
    assert (pack <= truth["flow"][:, 1] + 1e-9).all()
    # When the pump stopped, product kept arriving downstream for a minute or two: the line drained.
    level = truth["tank_level"][:, 2]
    arriving = np.diff(level) * result.line.tank_area * 60 + truth["flow"][1:, 2]  # minute t + 1
    assert arriving[STOP_START - 1] > 0.5 * result.config.nominal_flow
    # Then only a trickle (the settle-out pressure follows the sagging tank downstream) until the restart.
    assert arriving[STOP_START + 5 : STOP_END - 1].max() < 0.5


def test_the_balance_without_the_pack_term_misses_what_a_pump_stop_moved() -> None:
    result = simulate(pump_stop_line())
    around = slice(STOP_START - 5, STOP_START + 10)
    level_only = result.segment_imbalance(1, truth=True)[around].sum() / 60
    with_pack = result.segment_imbalance(1, truth=True, line_pack=True)[around].sum() / 60
    assert with_pack == pytest.approx(0.0, abs=1e-9)
    assert level_only < -4  # m3: the segment's own inventory, which looks like product appearing
    # From the transmitters (upstream discharge, downstream suction) with the exact K_eff, the pack
    # term removes nearly all of it over the stop.
    estimated = result.segment_imbalance(1, line_pack=True)[around].sum() / 60
    assert abs(estimated) < 0.1 * abs(level_only)


def test_line_pack_off_is_a_rigid_line() -> None:
    result = simulate(pump_stop_line(line_pack=False))
    assert not result.pack_m3h.any()
    assert result.line_pack_residual_m3h == 0.0
    balance = result.segment_imbalance(1, truth=True)
    assert np.allclose(balance, result.extraction_m3h[:, 1], atol=1e-9)


def test_the_pack_agrees_with_the_pressures_it_leads_to() -> None:
    config = SimulationConfig(stations=5, days=3, seed=4).with_rates(pump_stop_per_station_month=20)
    result = simulate(config)
    assert result.line_pack_residual_m3h < 1.0
    # The pack the cascade used agrees with the pack the final pressures ask for, over any hour.
    target = pack_target_m3h(result.pack_capacity_m3_per_bar, result.segment_mean_bar)
    hourly_used = result.pack_m3h.reshape(-1, 60, 5).sum(axis=1) / 60
    hourly_target = target.reshape(-1, 60, 5).sum(axis=1) / 60
    assert np.abs(hourly_used - hourly_target).max() < 0.5  # m3 in an hour
    assert np.abs(hourly_used).max() > 4  # and there was pack to agree on


def test_scenario_json_records_the_line_pack(tmp_path: Path) -> None:
    result = simulate(SimulationConfig(stations=3, days=0.5, seed=2))
    written = write_outputs(result, tmp_path)
    scenario = json.loads(written.scenario.read_text())
    record = scenario["line"]["line_pack"]
    assert record["enabled"] is True
    assert len(record["k_eff_gpa"]["diesel"]) == 3
    assert record["largest_gap_asked_vs_final_m3h"] == round(result.line_pack_residual_m3h, 6)
    assert scenario["config"]["line_pack"] is True
    assert scenario["config"]["clock_skew_s"] == 45.0
