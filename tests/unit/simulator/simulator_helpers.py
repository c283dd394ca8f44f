"""Shared by the simulator's tests (a plain module, not a conftest: the replay tests share this folder)."""

from __future__ import annotations

import dataclasses
from functools import cache

from simulator import Event, SimulationConfig, SimulationResult, simulate


def busy_config() -> SimulationConfig:
    """Four stations for four days with many events of every kind (drawn, default noise)."""
    return SimulationConfig(stations=4, days=4, seed=11).with_rates(
        theft_per_segment_month=30.0,
        leak_per_segment_month=3.0,
        sensor_fault_per_station_month=30.0,
        pump_stop_per_station_month=8.0,
    )


@cache
def busy_result() -> SimulationResult:
    return simulate(busy_config())


def with_scripted(config: SimulationConfig, *events: Event) -> SimulationConfig:
    return dataclasses.replace(config, scripted=events)


def perfect(config: SimulationConfig) -> SimulationConfig:
    """The same line with perfect instruments and no process noise: readings equal the truth."""
    return dataclasses.replace(config, noise_scale=0.0, process_noise=0.0, quantise=False)
