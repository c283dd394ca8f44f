"""Small simulated lines for the line-detector tests: the topology and the readings of a run."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

import numpy as np

from detector.topology import Topology
from simulator import Event, SimulationConfig, SimulationResult, simulate

Reading = tuple[str, datetime, Mapping[str, float]]


def quiet_line(
    *events: Event, days: float = 1.0, stations: int = 3, noise: float = 0.0, seed: int = 5
) -> SimulationResult:
    """A steady line with only ``events`` on it; ``noise`` scales the instruments (0: exact)."""
    config = SimulationConfig(
        stations=stations,
        days=days,
        seed=seed,
        noise_scale=noise,
        process_noise=0.0,
        quantise=noise > 0,
        scripted=events,
    ).quiet()
    return simulate(config)


def topology_of(result: SimulationResult, bulk_modulus_gpa: float = 10.0) -> Topology:
    """The simulated line; a stiff pipe (10 GPa) while the simulator has no line pack."""
    line, ids = result.line, result.station_ids
    return Topology.from_dict(
        {
            "line": [
                {
                    "id": "L1",
                    "station": [{"id": s, "tank_area_m2": float(line.tank_area)} for s in ids],
                    "segment": [
                        {
                            "upstream": ids[j],
                            "downstream": ids[j + 1],
                            "length_km": float(line.segment_km[j]),
                            "inner_diameter_m": float(result.config.pipe_diameter_m),
                            "bulk_modulus_gpa": bulk_modulus_gpa,
                        }
                        for j in range(len(ids) - 1)
                    ],
                }
            ]
        }
    )


def readings(result: SimulationResult) -> Iterator[Reading]:
    names = list(result.readings)
    arrays = [result.readings[name] for name in names]
    seconds = result.times.astype("datetime64[s]").astype(np.int64)
    for t in range(len(result.times)):
        ts = datetime.fromtimestamp(int(seconds[t]), UTC)
        for j, station in enumerate(result.station_ids):
            if result.present[t, j]:
                yield station, ts, {name: float(a[t, j]) for name, a in zip(names, arrays, strict=True)}
