"""The pipeline simulator: a line of pumping stations with labelled thefts, leaks, faults and transients.

>>> from simulator import SimulationConfig, simulate
>>> result = simulate(SimulationConfig(stations=3, days=0.5, seed=1))
>>> result.frame.columns[:3].tolist()
['timestamp', 'station_id', 'flow']
"""

from __future__ import annotations

from simulator.engine import simulate
from simulator.event import EVENT_TYPES, Event
from simulator.result import EVENTS_COLUMNS, READINGS_COLUMNS, SimulationResult
from simulator.scenario import SENSORS, UNITS, EventRates, SensorNoise, SimulationConfig

__all__ = [
    "EVENTS_COLUMNS",
    "EVENT_TYPES",
    "READINGS_COLUMNS",
    "SENSORS",
    "UNITS",
    "Event",
    "EventRates",
    "SensorNoise",
    "SimulationConfig",
    "SimulationResult",
    "simulate",
]
