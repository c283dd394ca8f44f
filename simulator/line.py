"""The line: stations with a breakout tank and a variable-speed pump, and the segments between them.

Station ``j`` pumps out of its own tank into segment ``j``, which ends in the tank of station
``j + 1`` (the last segment ends at the delivery terminal). Pressures here are quasi-static at
one-minute resolution: pressure waves cross a segment in well under a minute. The tanks carry memory
from one minute to the next (see ``cascade.py``), and so does each segment's inventory, which packs
and unpacks with its mean pressure (see ``linepack.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.scenario import SimulationConfig

Array = npt.NDArray[np.float64]

RHO_REF = 800.0  # kg/m3, the density every "at reference" figure below is quoted at
G = 9.81
PA_PER_BAR = 1e5
TANK_NOZZLE_M = 0.5  # height of suction/fill nozzles above the tank bottom
TERMINAL_BAR = 2.0  # pressure the last segment delivers into
SETTLE_OUT_MIN_BAR = 0.3  # a standing line never falls below its vapour pressure (no slack flow here)
PUMP_CURVE_DROOP = 0.25  # share of the shut-off head lost at nominal flow (H = H0 s² - b Q²)
BEP_FLOW_RATIO = 1.05  # best-efficiency flow relative to nominal at nominal speed
ETA_MAX = 0.80
ETA_CURVATURE = 0.6
MOTOR_EFFICIENCY = 0.95
# The seed data set reads ~400 "kW" at 500 m3/h and 70 bar, about a third of what a real pump draws
# there (~1.25 MW electrical); power is scaled so the nominal point lands on the seed's level.
POWER_SCALE = 0.30
AUX_KW = 25.0  # station auxiliaries, drawn whether or not the pump runs
GROUND_TEMP_C = 20.0
THERMAL_LENGTH_KM = 120.0  # distance over which product temperature relaxes to the ground's


@dataclass(frozen=True)
class Line:
    """The drawn topology and the equipment of every station (arrays indexed by station/segment)."""

    station_ids: tuple[str, ...]
    segment_km: Array
    static_bar: Array  # elevation gain of each segment, as pressure at RHO_REF
    friction_k: Array  # bar / (m3/h)^n at RHO_REF
    friction_exponent: float
    pump_h0: Array  # bar at RHO_REF, nominal speed, zero flow
    pump_b: Array
    rpm_nominal: Array
    level_setpoint: Array
    tank_area: float
    level_gain: float  # m3/h of extra outflow per metre of tank above its set point
    nominal_flow: float
    segment_volume_m3: Array
    distance_km: Array  # from the origin to each station

    @property
    def size(self) -> int:
        return len(self.station_ids)

    def to_json(self) -> dict[str, Any]:
        def rounded(values: Array, digits: int = 4) -> list[float]:
            return [round(float(v), digits) for v in values]

        return {
            "stations": list(self.station_ids),
            "segments": [
                f"{self.station_ids[j]}>{self.station_ids[j + 1] if j + 1 < self.size else 'TERMINAL'}"
                for j in range(self.size)
            ],
            "segment_km": rounded(self.segment_km, 2),
            "segment_volume_m3": rounded(self.segment_volume_m3, 1),
            "static_bar_at_800kgm3": rounded(self.static_bar, 3),
            "friction_k": [float(f"{v:.6e}") for v in self.friction_k],
            "friction_exponent": self.friction_exponent,
            "pump_shutoff_bar_at_800kgm3": rounded(self.pump_h0, 3),
            "pump_b": [float(f"{v:.6e}") for v in self.pump_b],
            "rpm_nominal": rounded(self.rpm_nominal, 1),
            "level_setpoint_m": rounded(self.level_setpoint, 3),
            "tank_area_m2": self.tank_area,
            "level_gain_m3h_per_m": round(self.level_gain, 3),
            "power_scale": POWER_SCALE,
            "aux_kw": AUX_KW,
        }


def draw_line(config: SimulationConfig, rng: np.random.Generator) -> Line:
    """Draw segment lengths, elevations and pump sizes so each station sits near the nominal point."""
    n = config.stations
    segment_km = rng.uniform(*config.segment_km, size=n)
    elevation_m = rng.uniform(-120.0, 200.0, size=n)
    static_bar = RHO_REF * G * elevation_m / PA_PER_BAR
    discharge_nominal = rng.uniform(*config.nominal_pressure, size=n)
    level_setpoint = config.tank_level_setpoint + rng.uniform(-1.5, 1.5, size=n)
    next_level = np.append(level_setpoint[1:], np.nan)
    arrival = np.where(np.isnan(next_level), TERMINAL_BAR, tank_head_bar(RHO_REF, next_level))
    # Friction takes what elevation and arrival leave; at least 40 % so every segment is a real pipe.
    friction_nominal = np.maximum(discharge_nominal - static_bar - arrival, 0.4 * discharge_nominal)
    friction_k = friction_nominal / config.nominal_flow**config.friction_exponent
    discharge_nominal = friction_nominal + static_bar + arrival
    suction_nominal = tank_head_bar(RHO_REF, level_setpoint)
    pump_dp = discharge_nominal - suction_nominal
    pump_h0 = pump_dp / (1.0 - PUMP_CURVE_DROOP)
    pump_b = PUMP_CURVE_DROOP * pump_h0 / config.nominal_flow**2
    rpm_nominal = config.nominal_rpm + rng.uniform(-25.0, 25.0, size=n)
    area = np.pi * config.pipe_diameter_m**2 / 4
    segment_volume = area * segment_km * 1000.0
    distance = np.concatenate([[0.0], np.cumsum(segment_km)[:-1]])
    return Line(
        station_ids=tuple(config.station_ids),
        segment_km=segment_km,
        static_bar=static_bar,
        friction_k=friction_k,
        friction_exponent=config.friction_exponent,
        pump_h0=pump_h0,
        pump_b=pump_b,
        rpm_nominal=rpm_nominal,
        level_setpoint=level_setpoint,
        tank_area=config.tank_area,
        level_gain=config.tank_area / (config.level_control_minutes / 60.0),
        nominal_flow=config.nominal_flow,
        segment_volume_m3=segment_volume,
        distance_km=distance,
    )


def tank_head_bar(rho: Array | float, level: Array | float) -> Array:
    """Pressure at a tank nozzle: the liquid column above it."""
    return np.asarray(rho * G * (np.asarray(level) + TANK_NOZZLE_M) / PA_PER_BAR, dtype=np.float64)


@dataclass(frozen=True)
class Hydraulics:
    """True (noise-free) station readings, each ``(minutes, stations)``."""

    discharge_bar: Array  # at the station's transmitter, upstream of its discharge valve
    inlet_bar: Array  # where the segment starts, downstream of the valve: what the pipe itself holds
    arrival_bar: Array  # where the segment ends: the next station's tank nozzle, or the terminal
    suction_bar: Array
    rpm: Array
    power_kw: Array


def segment_resistance(
    line: Line, *, extraction: Array, tap_position: Array, rho_segment: Array, friction_factor: Array
) -> Array:
    """Friction per flow**n of each segment, bar/(m3/h)^n; arrays ``(..., N)``.

    Friction grows with flow**n and with density; a tap at ``tap_position`` (fraction of the
    segment length) takes ``extraction`` (fraction of the segment's inflow), so only the pipe beyond
    the tap carries the reduced flow and the segment's inlet pressure falls.
    """
    beyond_tap = (1.0 - tap_position) * (1.0 - extraction) ** line.friction_exponent
    resistance = line.friction_k * (rho_segment / RHO_REF) * friction_factor * (tap_position + beyond_tap)
    return np.asarray(resistance, dtype=np.float64)


def segment_static_bar(line: Line, rho_segment: Array) -> Array:
    """Elevation gain of each segment as pressure, at the density of what fills it."""
    return np.asarray(line.static_bar * (rho_segment / RHO_REF), dtype=np.float64)


def arrival_bar(rho_segment: Array, level: Array) -> Array:
    """Where each segment ends: the next station's tank head, the terminal's pressure for the last."""
    arrival = np.empty_like(level)
    arrival[..., :-1] = tank_head_bar(rho_segment[..., :-1], level[..., 1:])
    arrival[..., -1] = TERMINAL_BAR
    return arrival


def solve_hydraulics(
    line: Line,
    *,
    flow: Array,
    running: npt.NDArray[np.bool_],
    level: Array,
    extraction: Array,
    tap_position: Array,
    valve_bar: Array,
    rho_segment: Array,
    rho_station: Array,
    friction_factor: Array,
) -> Hydraulics:
    """Pressures, pump speed and power from the flows the cascade settled on (arrays ``(T, N)``)."""
    resistance = segment_resistance(
        line,
        extraction=extraction,
        tap_position=tap_position,
        rho_segment=rho_segment,
        friction_factor=friction_factor,
    )
    arrival = arrival_bar(rho_segment, level)
    pipe_bar = arrival + segment_static_bar(line, rho_segment) + resistance * flow**line.friction_exponent
    # A stopped pump leaves the line at its settle-out pressure, never below vapour pressure.
    inlet = np.maximum(pipe_bar, SETTLE_OUT_MIN_BAR)
    discharge = np.maximum(pipe_bar + valve_bar, SETTLE_OUT_MIN_BAR)
    suction = tank_head_bar(rho_station, level)
    pump_dp = np.maximum(discharge - suction, 0.0)
    density_ratio = RHO_REF / rho_station
    speed_sq = (pump_dp * density_ratio + line.pump_b * flow**2) / line.pump_h0
    speed = np.sqrt(np.maximum(speed_sq, 0.0))
    rpm = np.where(running, line.rpm_nominal * speed, 0.0)
    bep = BEP_FLOW_RATIO * line.nominal_flow * np.maximum(speed, 1e-3)
    efficiency = np.clip(ETA_MAX * (1.0 - ETA_CURVATURE * (flow / bep - 1.0) ** 2), 0.3, ETA_MAX)
    hydraulic_kw = pump_dp * flow / 36.0  # bar x m3/h -> kW
    power = np.where(running, POWER_SCALE * hydraulic_kw / (efficiency * MOTOR_EFFICIENCY), 0.0) + AUX_KW
    return Hydraulics(
        discharge_bar=discharge,
        inlet_bar=inlet,
        arrival_bar=arrival,
        suction_bar=suction,
        rpm=rpm,
        power_kw=power,
    )


def product_temperature(line: Line, inlet_temp: Array, hour_of_day: Array) -> Array:
    """Temperature at each station's inlet: origin temperature relaxing to the ground's, plus a day cycle."""
    relax = np.exp(-line.distance_km / THERMAL_LENGTH_KM)
    daily = 1.2 * np.cos(2 * np.pi * (hour_of_day[:, None] - 16.0) / 24.0)
    return GROUND_TEMP_C + (inlet_temp - GROUND_TEMP_C) * relax + daily
