"""Every knob of a simulation, in one frozen object that is also what ``scenario.json`` records."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from detector.errors import ConfigError
from simulator.event import Event

SENSORS: tuple[str, ...] = (
    "flow",
    "pressure",
    "pump_rpm",
    "tank_level",
    "power",
    "suction_pressure",
    "temperature",
)

# Units, written into scenario.json and the docs so a reader of the CSV knows what a number means.
UNITS: dict[str, str] = {
    "flow": "m3/h",
    "pressure": "bar(g)",
    "pump_rpm": "rpm",
    "tank_level": "m",
    "power": "kW (seed scale)",
    "suction_pressure": "bar(g)",
    "temperature": "degC",
}

SCENARIO_FORMAT = 2  # 2: line pack, clock skew (config knobs, the line's "line_pack" record)
# A station clock off by more than a few minutes is a misconfiguration, not skew: it would outrun the
# detector's allowed lateness. Two minutes bounds the knob.
MAX_CLOCK_SKEW_S = 120.0


@dataclass(frozen=True)
class SensorNoise:
    """One instrument: AR(1) noise, a random-walk drift and a quantisation step.

    ``sigma`` and ``drift_per_month`` are relative to the reading when ``relative`` is true
    (flow meters and power meters are specified in % of reading), absolute otherwise (pressure
    transmitters in % of span). ``phi`` is the AR(1) coefficient at one-minute sampling.
    """

    sigma: float
    phi: float
    drift_per_month: float
    quantum: float
    decimals: int
    relative: bool = False


def default_noise() -> dict[str, SensorNoise]:
    # Instrument classes: flow ±0.5–1 % of reading (2σ), pressure ±0.25 % of a 0–100 bar span,
    # power ±1 % of reading, radar level gauge a few mm, RTD ±0.1 °C.
    return {
        "flow": SensorNoise(0.0035, 0.9, 0.002, 0.1, 1, relative=True),
        "pressure": SensorNoise(0.12, 0.7, 0.05, 0.01, 2),
        "pump_rpm": SensorNoise(1.5, 0.5, 0.0, 1.0, 0),
        "tank_level": SensorNoise(0.005, 0.9, 0.003, 0.001, 3),
        "power": SensorNoise(0.005, 0.8, 0.002, 0.1, 1, relative=True),
        "suction_pressure": SensorNoise(0.0125, 0.7, 0.005, 0.001, 3),
        "temperature": SensorNoise(0.05, 0.95, 0.05, 0.01, 2),
    }


@dataclass(frozen=True)
class EventRates:
    """Expected counts per 30 days, and size/duration ranges of every event family."""

    theft_per_segment_month: float = 2.0
    theft_fraction: tuple[float, float] = (0.005, 0.15)  # of the segment's flow, log-uniform
    theft_minutes: tuple[float, float] = (10.0, 360.0)  # log-uniform
    theft_ramp_minutes: tuple[float, float] = (1.0, 10.0)
    theft_night_share: float = 0.7  # share of thefts that start between 21:00 and 05:00
    leak_per_segment_month: float = 0.1
    leak_fraction: tuple[float, float] = (0.002, 0.02)  # final size, log-uniform
    leak_hours: tuple[float, float] = (6.0, 72.0)
    sensor_fault_per_station_month: float = 1.0
    setpoint_change_per_day: float = 0.5
    pump_stop_per_station_month: float = 1.0
    valve_manoeuvre_per_segment_month: float = 0.5
    maintenance_per_month: float = 1.0
    batch_interval_hours: tuple[float, float] = (36.0, 96.0)


@dataclass(frozen=True)
class SimulationConfig:
    """A line of ``stations`` pumping stations in series, sampled every minute for ``days``."""

    stations: int = 6
    days: float = 30.0
    seed: int = 7
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    utc_offset_hours: float = -6.0  # local time of the line (central Mexico): demand and night follow it
    nominal_flow: float = 500.0  # m3/h
    nominal_pressure: tuple[float, float] = (62.0, 78.0)  # discharge at nominal flow, bar
    nominal_rpm: float = 1800.0
    tank_level_setpoint: float = 15.0  # m
    tank_area: float = 250.0  # m2 (an 18 m diameter breakout tank)
    level_control_minutes: float = 20.0  # time constant of each station's level trim
    friction_exponent: float = 1.8
    segment_km: tuple[float, float] = (35.0, 75.0)
    pipe_diameter_m: float = 0.3048  # 12 inch
    # Line pack: each segment's inventory follows its mean pressure (see ``linepack.py``).
    line_pack: bool = True
    pipe_wall_m: float = 0.008  # steel wall thickness; the pipe's elasticity softens the product
    pipe_modulus_gpa: float = 200.0  # Young's modulus of steel
    # Station clocks: each is off by up to this many seconds (0: perfect clocks; see ``clock.py``).
    clock_skew_s: float = 45.0
    clock_wander_s: float = 3.0  # standard deviation of each clock's slow wander around its offset
    daily_amplitude: float = 0.06  # demand cycle, fraction of nominal flow
    process_noise: float = 1.0  # scale of the line's own flow fluctuations (0: none)
    noise_scale: float = 1.0  # scale of every instrument's noise and drift (0: perfect instruments)
    quantise: bool = True
    normal_life: bool = True  # daily cycle, set-point changes, pump stops, batches, valves, maintenance
    rates: EventRates = field(default_factory=EventRates)
    noise: dict[str, SensorNoise] = field(default_factory=default_noise)
    # Events placed by hand (minute indices from ``start``) on top of the drawn ones: tests and demos.
    scripted: tuple[Event, ...] = ()

    def __post_init__(self) -> None:
        if self.stations < 1:
            raise ConfigError("stations must be at least 1")
        if self.days <= 0:
            raise ConfigError("days must be positive")
        if self.minutes < 1:
            raise ConfigError("days must cover at least one minute")
        if self.start.tzinfo is None:
            raise ConfigError("start must be timezone-aware (UTC)")
        if self.start.astimezone(UTC).second or self.start.microsecond:
            raise ConfigError("start must sit on a whole minute")
        if not 1.5 <= self.friction_exponent <= 2.0:
            raise ConfigError("friction_exponent must be within 1.5..2.0")
        if self.noise_scale < 0 or self.process_noise < 0:
            raise ConfigError("noise scales must be non-negative")
        if not 0 < self.pipe_wall_m < self.pipe_diameter_m / 2:
            raise ConfigError("pipe_wall_m must be positive and less than half of pipe_diameter_m")
        if self.pipe_modulus_gpa <= 0:
            raise ConfigError("pipe_modulus_gpa must be positive")
        if not 0 <= self.clock_skew_s <= MAX_CLOCK_SKEW_S:
            raise ConfigError(f"clock_skew_s must be within 0..{MAX_CLOCK_SKEW_S:g} seconds")
        if self.clock_wander_s < 0:
            raise ConfigError("clock_wander_s must be non-negative")
        lo, hi = self.rates.theft_fraction
        if not 0 < lo <= hi < 1:
            raise ConfigError("theft_fraction must satisfy 0 < low <= high < 1")
        lo, hi = self.rates.theft_minutes
        if not 2 <= lo <= hi:
            raise ConfigError("theft_minutes must satisfy 2 <= low <= high")
        for event in self.scripted:
            if not 0 <= event.start < event.end <= self.minutes:
                raise ConfigError(
                    f"scripted event {event.event_type} span {event.start}..{event.end} is outside the run"
                )
            if event.segment is not None and not 0 <= event.segment < self.stations - 1:
                raise ConfigError(f"scripted event segment {event.segment} needs a station at both ends")
        missing = set(SENSORS) - set(self.noise)
        if missing:
            raise ConfigError(f"noise model missing for sensors: {sorted(missing)}")

    @property
    def minutes(self) -> int:
        return round(self.days * 24 * 60)

    @property
    def local_minute_of_day_at_start(self) -> int:
        utc = self.start.astimezone(UTC)
        return round(utc.hour * 60 + utc.minute + self.utc_offset_hours * 60) % 1440

    @property
    def station_ids(self) -> list[str]:
        width = max(2, len(str(self.stations)))
        return [f"EST-{i + 1:0{width}d}" for i in range(self.stations)]

    def with_rates(self, **changes: Any) -> SimulationConfig:
        return dataclasses.replace(self, rates=dataclasses.replace(self.rates, **changes))

    def quiet(self) -> SimulationConfig:
        """The same line with no events of any kind and no normal-life manoeuvres.

        Line pack and clock skew stay as configured: they are physics and instruments, not events.
        """
        no_events = EventRates(
            theft_per_segment_month=0.0,
            leak_per_segment_month=0.0,
            sensor_fault_per_station_month=0.0,
            setpoint_change_per_day=0.0,
            pump_stop_per_station_month=0.0,
            valve_manoeuvre_per_segment_month=0.0,
            maintenance_per_month=0.0,
        )
        return dataclasses.replace(self, rates=no_events, normal_life=False)

    def to_json_dict(self) -> dict[str, Any]:
        def convert(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if isinstance(value, dict):
                return {key: convert(item) for key, item in value.items()}
            if isinstance(value, list | tuple):
                return [convert(item) for item in value]
            return value

        converted: dict[str, Any] = convert(dataclasses.asdict(self))
        return converted


def scenario_json(config: SimulationConfig, line: dict[str, Any], events_summary: dict[str, int]) -> str:
    """The text of scenario.json: every parameter, the seed, the drawn line; no wall-clock time."""
    document = {
        "format": SCENARIO_FORMAT,
        "generator": "centinela simulate",
        "seed": config.seed,
        "config": config.to_json_dict(),
        "units": UNITS,
        "sensors": list(SENSORS),
        "station_ids": config.station_ids,
        "line": line,
        "events_by_type": events_summary,
    }
    return json.dumps(document, indent=2, sort_keys=False) + "\n"
