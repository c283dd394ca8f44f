"""Line pack: a segment holds more product when its pressure rises, and gives it back when it falls.

Product and pipe wall are both slightly elastic. A segment of volume ``V`` whose mean pressure rises
by ``dp`` takes in ``V * dp / K_eff`` more than it delivers, where the effective bulk modulus adds
the product's compressibility and the wall's (a thin-walled pipe free to stretch)::

    1 / K_eff = 1 / K_product + D / (E * e)

For 12-inch pipe (D = 0.3048 m) with an 8 mm steel wall (E = 200 GPa) the wall term is 0.19 /GPa,
so K_eff is 0.87 GPa in gasoline, 1.04 in jet fuel and 1.17 in diesel: a 50 km segment (3,650 m³)
packs 3.1-4.2 m³ per 10 bar of mean pressure. A pump stop that drops a segment from ~70 bar at its
inlet to its settle-out pressure unpacks 8-12 m³ into the next tank: a few minutes of a 2 % tap.

The segment's mean pressure is taken as the mean of its inlet pressure (after the discharge valve,
so a throttling valve at held flow packs nothing) and its arrival pressure; both are quasi-static.
What is not quasi-static is the flow that packs the line: a segment cannot pack faster than product
enters it, nor pack or unpack faster than ``MAX_PACK_RATE`` times the nominal flow, so a restart
packs over one or two minutes while the pressure transmitters already read the new level (see
``cascade.py``, which carries what is still owed from one minute to the next).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from replay.simulator.batches import PRODUCTS
from replay.simulator.line import Hydraulics, Line
from replay.simulator.scenario import SimulationConfig

Array = npt.NDArray[np.float64]

GPA_PER_BAR = 1e-4
# The fastest a segment packs or unpacks, as a multiple of the nominal flow: the pressure gradient
# that drives the packing flow is of the order of the one that drives the line's own flow.
MAX_PACK_RATE = 1.0
# Fixed-point passes of cascade -> hydraulics -> pack. A pass carries the pack's effect one station
# further down the line (a tank that received less pumps less, which moves the next segment's
# pressure), and the effect shrinks about tenfold per station: after four passes no pack rate moves by
# more than a few m3/h in any one minute (a few hundredths of a m3), whatever the line's length.
MAX_PASSES = 4
# Stop once no segment's pack rate moves by more than this between passes (m3/h, any minute).
CONVERGED_M3H = 0.01


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
