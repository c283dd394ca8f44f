"""Instrument noise has memory and the CSV formatter writes numbers exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator import SENSORS, SimulationConfig, simulate
from simulator.csv_bytes import join_row, numbers
from simulator.noise import ar1, drift
from tests.unit.simulator.simulator_helpers import perfect


def test_perfect_instruments_read_the_truth() -> None:
    result = simulate(
        perfect(SimulationConfig(stations=3, days=0.5, seed=8).with_rates(sensor_fault_per_station_month=0.0))
    )
    assert set(result.readings) == set(SENSORS)
    for sensor, values in result.readings.items():
        assert np.array_equal(values, result.truth[sensor])


def test_ar1_has_unit_variance_and_the_requested_memory() -> None:
    series = ar1(np.random.default_rng(0), 20_000, 3, 0.9)
    assert np.allclose(series.var(axis=0), 1.0, atol=0.15)
    lag1 = [np.corrcoef(series[:-1, c], series[1:, c])[0, 1] for c in range(3)]
    assert np.allclose(lag1, 0.9, atol=0.02)


def test_ar1_is_continuous_across_its_blocks() -> None:
    series = ar1(np.random.default_rng(1), 64 * 200, 1, 0.95)[:, 0]
    jumps = np.abs(np.diff(series))
    at_block_edges = jumps[63::64]
    assert at_block_edges.mean() < 2 * jumps.mean()


@pytest.mark.slow
def test_drift_grows_like_a_random_walk() -> None:
    walks = drift(np.random.default_rng(2), 43_200, 200, 0.01)
    assert 0.007 < np.std(walks[-1] - walks[0]) < 0.013


def test_instrument_error_is_at_the_configured_level() -> None:
    result = simulate(SimulationConfig(stations=3, days=2, seed=8).quiet())
    flow_error = result.readings["flow"] / result.truth["flow"] - 1
    assert 0.002 < np.std(flow_error) < 0.006  # ±0.5–1 % of reading at 2σ, with drift
    pressure_error = result.readings["pressure"] - result.truth["pressure"]
    assert 0.08 < np.std(pressure_error) < 0.2  # ±0.25 % of a 100 bar span
    autocorrelation = np.corrcoef(flow_error[:-1, 0], flow_error[1:, 0])[0, 1]
    assert autocorrelation > 0.8  # noise with memory, not i.i.d.


@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=50),
    st.integers(min_value=0, max_value=3),
)
def test_numbers_match_python_formatting_of_quantised_values(values: list[float], decimals: int) -> None:
    quantised = np.round(np.array(values), decimals)
    text = join_row([numbers(quantised, decimals)]).decode().splitlines()
    expected = [f"{v:.{decimals}f}" for v in quantised]
    expected = [e[1:] if e.startswith("-") and float(e) == 0 else e for e in expected]  # no "-0.0"
    assert text == expected


def test_nan_is_an_empty_cell() -> None:
    text = join_row([numbers(np.array([1.5, np.nan, -2.25]), 2), numbers(np.array([np.nan, 3.0, 4.0]), 0)])
    assert text.decode() == "1.50,\n,3\n-2.25,4\n"
