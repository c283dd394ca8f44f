"""Product batches: the line carries gasoline, diesel and jet fuel one after another.

A new batch enters at the origin every day and a half to four days. Interfaces travel with the
volume the origin pumps (a plug-flow approximation that ignores mixing and the small flow
differences between stations). A segment's density and friction are the averages of what fills it
at that minute, so pressures and power shift smoothly while an interface crosses a segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.event import Event
from simulator.line import Line
from simulator.scenario import SimulationConfig

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Product:
    name: str
    density: float  # kg/m3
    friction_factor: float  # relative to jet fuel: more viscous products lose more pressure
    temperature_offset: float  # degC at the origin relative to the ground
    bulk_modulus_gpa: float  # isothermal, at line pressure: lighter products are more compressible


# Bulk moduli of refined products near 20 degC and 0-100 bar (compressibility about 9.5, 7.7 and
# 6.7 x 1e-5 per bar): gasoline is the softest, diesel the stiffest.
PRODUCTS: tuple[Product, ...] = (
    Product("gasoline", 740.0, 0.95, 1.5, 1.05),
    Product("jet", 800.0, 1.00, 0.5, 1.30),
    Product("diesel", 840.0, 1.08, -0.5, 1.50),
)


@dataclass(frozen=True)
class BatchState:
    rho_segment: Array  # (T, N) mean density in each segment
    friction_factor: Array  # (T, N) mean friction factor in each segment
    compressibility_segment: Array  # (T, N) mean 1/K of the product filling each segment, 1/GPa
    rho_station: Array  # (T, N) density of the product at each station
    temperature_offset: Array  # (T, N) of the product at each station
    events: list[Event]
    products: list[str]  # product of each batch, the line's initial fill first


def _cumulative(values: Array, entry: Array, u: Array) -> Array:
    """Integral of the step function ``values`` (steps at ``entry``) from ``entry[0]`` to ``u``."""
    widths = np.diff(entry)
    integral = np.concatenate([[0.0], np.cumsum(values[:-1] * widths)])
    k = np.clip(np.searchsorted(entry, u, side="right") - 1, 0, len(entry) - 1)
    return np.asarray(integral[k] + values[k] * (u - entry[k]), dtype=np.float64)


def simulate_batches(
    config: SimulationConfig, line: Line, origin_flow: Array, rng: np.random.Generator
) -> BatchState:
    minutes = len(origin_flow)
    n = line.size
    pumped = np.cumsum(origin_flow) / 60.0  # m3 through the origin station by the end of each minute
    entries = [0]
    if config.normal_life:
        low, high = config.rates.batch_interval_hours
        while True:
            nxt = entries[-1] + round(60 * rng.uniform(low, high))
            if nxt >= minutes:
                break
            entries.append(nxt)
    choice = [int(rng.integers(len(PRODUCTS)))]
    for _ in entries[1:]:
        others = [i for i in range(len(PRODUCTS)) if i != choice[-1]]
        choice.append(int(rng.choice(others)))
    # Volume coordinate: fluid with entry volume u entered the line when the origin had pumped u m3.
    line_volume = float(line.segment_volume_m3.sum())
    entry_volume = np.array([-(line_volume + 1.0)] + [float(pumped[t]) for t in entries[1:]])
    density = np.array([PRODUCTS[c].density for c in choice])
    friction = np.array([PRODUCTS[c].friction_factor for c in choice])
    temp_offset = np.array([PRODUCTS[c].temperature_offset for c in choice])
    # Compressibilities add by volume share: a segment half gasoline, half diesel has the mean of 1/K.
    compressibility = np.array([1.0 / PRODUCTS[c].bulk_modulus_gpa for c in choice])

    upstream_edge = np.concatenate([[0.0], np.cumsum(line.segment_volume_m3)[:-1]])  # volume to station j
    downstream_edge = upstream_edge + line.segment_volume_m3
    u_in = pumped[:, None] - upstream_edge[None, :]  # entry volume of the fluid at station j
    u_out = pumped[:, None] - downstream_edge[None, :]  # ... at the far end of segment j
    volume = line.segment_volume_m3[None, :]
    rho_segment = (
        _cumulative(density, entry_volume, u_in) - _cumulative(density, entry_volume, u_out)
    ) / volume
    friction_factor = (
        _cumulative(friction, entry_volume, u_in) - _cumulative(friction, entry_volume, u_out)
    ) / volume
    compressibility_segment = (
        _cumulative(compressibility, entry_volume, u_in) - _cumulative(compressibility, entry_volume, u_out)
    ) / volume
    at_station = np.clip(np.searchsorted(entry_volume, u_in, side="right") - 1, 0, len(entry_volume) - 1)

    events: list[Event] = []
    for k in range(1, len(entry_volume)):
        reach = np.searchsorted(pumped, entry_volume[k] + np.append(upstream_edge, line_volume), side="left")
        for j in range(n):
            start, end = int(reach[j]), int(min(reach[j + 1], minutes))
            if start >= minutes or end <= start:
                continue
            events.append(
                Event(
                    "transient",
                    "batch_change",
                    start,
                    end,
                    (j,),
                    station=j,
                    magnitude=float(density[k]),
                    unit=f"kg/m3 ({PRODUCTS[choice[k]].name} after {PRODUCTS[choice[k - 1]].name})",
                )
            )
    return BatchState(
        rho_segment=rho_segment,
        friction_factor=friction_factor,
        compressibility_segment=compressibility_segment,
        rho_station=density[at_station],
        temperature_offset=temp_offset[at_station],
        events=events,
        products=[PRODUCTS[c].name for c in choice],
    )
