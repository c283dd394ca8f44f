"""The physics hangs together: mass balance, the theft's signature, the right signs."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import Event, SimulationConfig, simulate
from tests.unit.simulator.simulator_helpers import perfect, with_scripted

THEFT_START, THEFT_END = 600, 960
PLATEAU = slice(900, 955)  # long after the level loops settled, before the closing ramp
BEFORE = slice(500, 590)


def theft_line(fraction: float = 0.05, noise: bool = False) -> SimulationConfig:
    config = SimulationConfig(stations=4, days=1, seed=3).quiet()
    config = with_scripted(config, Event.theft(1, THEFT_START, THEFT_END, fraction))
    return config if noise else perfect(config)


def test_steady_state_without_events_balances_exactly_on_the_truth() -> None:
    result = simulate(perfect(SimulationConfig(stations=5, days=1, seed=1).quiet()))
    flow = result.truth["flow"]
    assert np.allclose(flow, flow[0, 0], rtol=1e-12)
    for segment in range(4):
        assert np.allclose(result.segment_imbalance(segment, truth=True), 0.0, atol=1e-9)
    assert np.ptp(result.truth["pressure"], axis=0).max() < 1e-9
    assert not result.label.any()


def test_steady_state_with_instruments_balances_within_their_noise() -> None:
    result = simulate(SimulationConfig(stations=5, days=2, seed=2).quiet())
    flow = result.readings["flow"]
    for segment in range(4):
        difference = flow[:, segment] - flow[:, segment + 1]
        # Meter bias and drift are a few tenths of a percent; 1 % of flow would be a calibration fault.
        assert abs(difference.mean()) < 0.01 * flow.mean()
        relative_noise = np.std(difference) / flow.mean()
        assert 0.002 < relative_noise < 0.015  # realistic meters: neither perfect nor sloppy


def test_compensated_imbalance_with_line_pack_equals_the_extraction_every_minute() -> None:
    result = simulate(theft_line())
    balance = result.segment_imbalance(1, truth=True, line_pack=True)
    assert np.allclose(balance, result.extraction_m3h[:, 1], atol=1e-9)
    # Without the pack term the balance is off by exactly what the segment packed: the tap lowers
    # the pressure along the segment, which gives product back while the tap opens and takes it
    # again as it closes.
    level_only = result.segment_imbalance(1, truth=True)
    assert np.allclose(level_only - balance, result.pack_m3h[:, 1], atol=1e-9)
    opening = slice(THEFT_START, THEFT_START + 15)
    assert result.pack_m3h[opening, 1].sum() / 60 < -0.1  # m3 given back as the pressure falls
    assert result.extraction_m3h[THEFT_START:THEFT_END, 1].min() > 0
    assert result.extraction_m3h[:THEFT_START, 1].max() == 0
    assert result.extraction_m3h[THEFT_END:, 1].max() == 0


@pytest.mark.parametrize("fraction", [0.005, 0.05, 0.15])
def test_station_flow_imbalance_settles_on_the_extraction(fraction: float) -> None:
    result = simulate(theft_line(fraction))
    flow = result.truth["flow"]
    imbalance = flow[PLATEAU, 1] - flow[PLATEAU, 2]
    extraction = fraction * flow[PLATEAU, 1]
    assert np.allclose(imbalance, extraction, rtol=0.02)
    assert np.allclose(result.extraction_m3h[PLATEAU, 1], extraction)


def test_theft_signature_has_the_physical_signs() -> None:
    result = simulate(theft_line(0.05))
    truth = result.truth

    def change(sensor: str, station: int) -> float:
        return float(truth[sensor][PLATEAU, station].mean() - truth[sensor][BEFORE, station].mean())

    # Upstream of the tap: flow held by its controller, less friction beyond the tap, so lower
    # discharge pressure and less power for the same flow.
    assert abs(change("flow", 1)) < 1e-6
    assert change("pressure", 1) < -0.5
    assert change("power", 1) < 0
    assert change("pump_rpm", 1) < 0
    # Downstream: less arrives, its tank sags, its level trim pumps less, so lower flow, pressure, power.
    assert change("flow", 2) < -0.04 * 500
    assert change("tank_level", 2) < 0
    assert change("suction_pressure", 2) < 0
    assert change("pressure", 2) < 0
    assert change("power", 2) < 0
    # Upstream of the tapped segment, nothing changes: each station pumps from its own tank.
    assert abs(change("pressure", 0)) < 1e-9


def test_larger_theft_gives_a_larger_pressure_drop_upstream() -> None:
    drops = []
    for fraction in (0.01, 0.05, 0.15):
        truth = simulate(theft_line(fraction)).truth["pressure"]
        drops.append(truth[BEFORE, 1].mean() - truth[PLATEAU, 1].mean())
    assert 0 < drops[0] < drops[1] < drops[2]


def test_pump_head_follows_the_affinity_law() -> None:
    """With the same flow, required head goes with rpm²; speed the pump needs rises with pressure."""
    result = simulate(perfect(SimulationConfig(stations=3, days=2, seed=5)))
    rpm = result.truth["pump_rpm"][:, 0]
    pressure = result.truth["pressure"][:, 0]
    running = rpm > 0
    assert np.corrcoef(rpm[running], pressure[running])[0, 1] > 0.9


def test_power_grows_with_flow_times_pressure() -> None:
    result = simulate(perfect(SimulationConfig(stations=3, days=3, seed=6)))
    flow, pressure, power = (result.truth[s][:, 1] for s in ("flow", "pressure", "power"))
    running = flow > 0
    hydraulic = flow[running] * pressure[running]
    assert np.corrcoef(hydraulic, power[running])[0, 1] > 0.95


def test_nominal_operating_point_matches_the_seed_data_set() -> None:
    result = simulate(SimulationConfig(stations=6, days=3, seed=7).quiet())
    means = {s: float(np.nanmean(result.readings[s])) for s in result.readings}
    assert 480 < means["flow"] < 520
    assert 60 < means["pressure"] < 80
    assert 1700 < means["pump_rpm"] < 1900
    assert 13 < means["tank_level"] < 17
    assert 350 < means["power"] < 450


@pytest.mark.slow
def test_denser_product_raises_pressure_and_power() -> None:
    result = simulate(perfect(SimulationConfig(stations=3, days=8, seed=9)))
    batches = [e for e in result.events if e.subtype == "batch_change" and e.station == 0]
    assert batches, "expected batch changes in eight days"
    rho = result.truth["suction_pressure"][:, 0] / (result.truth["tank_level"][:, 0] + 0.5)
    pressure_per_flow = result.truth["pressure"][:, 0] / np.maximum(result.truth["flow"][:, 0], 1) ** 1.8
    running = result.truth["flow"][:, 0] > 100
    assert np.corrcoef(rho[running], pressure_per_flow[running])[0, 1] > 0.5
