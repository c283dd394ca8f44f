"""Line pack: a segment holds more product when its pressure rises, and gives it back when it falls.

Product and pipe wall are both slightly elastic. A segment of volume ``V`` whose mean pressure rises
by ``dp`` takes in ``V * dp / K_eff`` more than it delivers, where the effective bulk modulus adds
the product's compressibility and the wall's (a thin-walled pipe free to stretch)::

    1 / K_eff = 1 / K_product + D / (E * e)

For 12-inch pipe (D = 0.3048 m) with an 8 mm steel wall (E = 200 GPa) the wall term is 0.19 /GPa,
so K_eff is 0.87 GPa in gasoline, 1.04 in jet fuel and 1.17 in diesel: a 50 km segment (3,650 m³)
packs 3.1-4.2 m³ per 10 bar of mean pressure. A pump stop that drops a segment from ~70 bar at its
inlet to its settle-out pressure unpacks about 12 m³ into the next tank (12-18 m³ on seed 1001's
line): more than an hour of a 2 % tap (10 m³/h), in a minute or two.

The segment's mean pressure is taken as the mean of its inlet pressure (after the discharge valve,
so a throttling valve at held flow packs nothing) and its arrival pressure; both are quasi-static.
What is not quasi-static is the flow that packs the line: a segment cannot pack faster than product
enters it, nor pack or unpack faster than ``MAX_PACK_RATE`` times the nominal flow, so a restart
packs over two or three minutes while the pressure transmitters already read the new level (see
``cascade.py``, which carries what is still owed from one minute to the next).

Flows need the pack, the pack needs the pressures, the pressures need the flows: the cascade asks
``PackModel`` for each minute's pack as it steps (one pass, exact but for one detail: a minute's
arrival pressure is taken at the tank level the minute starts with, where the hydraulics afterwards
use the level it ends with; a few millimetres of level, a few thousandths of a bar).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.batches import PRODUCTS, BatchState
from simulator.line import (
    SETTLE_OUT_MIN_BAR,
    Hydraulics,
    Line,
    arrival_bar,
    segment_resistance,
    segment_static_bar,
)
from simulator.scenario import SimulationConfig

Array = npt.NDArray[np.float64]

GPA_PER_BAR = 1e-4
# The fastest a segment packs or unpacks, as a multiple of the nominal flow: the pressure gradient
# that drives the packing flow is of the order of the one that drives the line's own flow.
MAX_PACK_RATE = 1.0


def wall_compressibility_per_gpa(config: SimulationConfig) -> float:
    """D / (E e): what the pipe's stretching adds to the product's compressibility, 1/GPa."""
    return config.pipe_diameter_m / (config.pipe_modulus_gpa * config.pipe_wall_m)


def pack_capacity_m3_per_bar(
    config: SimulationConfig, line: Line, product_compressibility_per_gpa: Array
) -> Array:
    """m³ a segment takes in per bar of mean pressure, for each minute's product mix (T, N)."""
    effective = product_compressibility_per_gpa + wall_compressibility_per_gpa(config)
    return np.asarray(line.segment_volume_m3 * effective * GPA_PER_BAR, dtype=np.float64)


def mean_pressure_bar(hydraulics: Hydraulics) -> Array:
    """Each segment's mean pressure: halfway between its inlet and its arrival pressure (T, N)."""
    return np.asarray(0.5 * (hydraulics.inlet_bar + hydraulics.arrival_bar), dtype=np.float64)


def pack_target_m3h(capacity_m3_per_bar: Array, mean_bar: Array) -> Array:
    """The rate each segment would pack at if flow could follow the pressure at once (T, N), m³/h.

    Minute ``t`` packs ``capacity[t] * (mean[t] - mean[t-1])``; the first minute packs nothing.
    """
    change = np.zeros_like(mean_bar)
    change[1:] = np.diff(mean_bar, axis=0)
    return np.asarray(capacity_m3_per_bar * change * 60.0, dtype=np.float64)


class PackModel:
    """Minute by minute, the rate each segment would pack at: what the cascade asks while it steps.

    The cascade decides each station's flow at the start of a minute, before the tanks move, so the
    segment pressures of that minute follow from the flows, the levels at the start of the minute
    and the product in the segments (the batches, which depend only on the origin's flow). ``target``
    is called once per minute, in order; it records what it asked in ``asked`` (T, N), m³/h.
    """

    def __init__(
        self,
        config: SimulationConfig,
        line: Line,
        batches: BatchState,
        extraction: Array,
        tap_position: Array,
    ) -> None:
        # What does not depend on the flows is worked out once for the whole run (the loop calls
        # ``target`` 43,200 times a month; every numpy call saved there is a second saved).
        self._exponent = line.friction_exponent
        self._resistance = segment_resistance(
            line,
            extraction=extraction,
            tap_position=tap_position,
            rho_segment=batches.rho_segment,
            friction_factor=batches.friction_factor,
        )
        self._static = segment_static_bar(line, batches.rho_segment)
        self._rho = batches.rho_segment
        self.capacity = pack_capacity_m3_per_bar(config, line, batches.compressibility_segment)
        self.asked = np.zeros_like(self.capacity)
        self._previous: Array | None = None

    def target(self, t: int, flow: Array, level: Array) -> Array:
        """Pack rate for minute ``t`` (N,), from that minute's flows and the levels it starts with."""
        arrival = arrival_bar(self._rho[t], level)
        pipe_bar = arrival + self._static[t] + self._resistance[t] * flow**self._exponent
        mean = 0.5 * (np.maximum(pipe_bar, SETTLE_OUT_MIN_BAR) + arrival)
        previous = mean if self._previous is None else self._previous
        self._previous = mean
        asked = self.capacity[t] * (mean - previous) * 60.0
        self.asked[t] = asked
        return np.asarray(asked, dtype=np.float64)


def line_pack_record(config: SimulationConfig, line: Line) -> dict[str, Any]:
    """What scenario.json says about line pack: the pipe, and K_eff per product and segment."""
    wall = wall_compressibility_per_gpa(config)
    k_eff: dict[str, list[float]] = {}
    capacity: dict[str, list[float]] = {}
    for product in PRODUCTS:
        effective = 1.0 / product.bulk_modulus_gpa + wall
        k_eff[product.name] = [round(1.0 / effective, 4)] * len(line.segment_km)
        capacity[product.name] = [
            round(float(v), 4) for v in line.segment_volume_m3 * effective * GPA_PER_BAR
        ]
    return {
        "enabled": config.line_pack,
        "product_bulk_modulus_gpa": {product.name: product.bulk_modulus_gpa for product in PRODUCTS},
        "pipe_wall_m": config.pipe_wall_m,
        "pipe_modulus_gpa": config.pipe_modulus_gpa,
        "wall_compressibility_per_gpa": round(wall, 6),
        "k_eff_gpa": k_eff,
        "pack_m3_per_bar": capacity,
        "max_pack_rate_m3h": MAX_PACK_RATE * config.nominal_flow,
        "mean_pressure": "(segment inlet after the discharge valve + arrival) / 2",
    }
