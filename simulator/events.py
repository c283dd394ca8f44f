"""Drawing events at their rates, turning them into what the line feels, and into row labels."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from simulator.event import ALL_SENSORS, PRIORITY, Event
from simulator.scenario import SENSORS, SimulationConfig

Array = npt.NDArray[np.float64]

MINUTES_PER_MONTH = 30 * 24 * 60


def _poisson_starts(rng: np.random.Generator, rate_per_month: float, minutes: int) -> npt.NDArray[np.int64]:
    count = rng.poisson(rate_per_month * minutes / MINUTES_PER_MONTH)
    return np.sort(rng.integers(0, max(minutes, 1), size=count))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _theft_start(rng: np.random.Generator, minutes: int, night_share: float, local_at_start: int) -> int:
    day = int(rng.integers(0, max(1, -(-minutes // 1440))))
    if rng.random() < night_share:
        minute_of_day = (21 * 60 + int(rng.integers(0, 8 * 60))) % 1440  # 21:00..05:00 local
    else:
        minute_of_day = int(rng.integers(0, 1440))
    return day * 1440 + (minute_of_day - local_at_start) % 1440


def _overlaps(busy: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(start < b_end and b_start < end for b_start, b_end in busy)


def draw_events(config: SimulationConfig, rng: np.random.Generator) -> list[Event]:
    """Draw every event except batch changes (those depend on the flows; see ``batches.py``)."""
    minutes = config.minutes
    n = config.stations
    rates = config.rates
    level_tau = config.level_control_minutes
    events: list[Event] = list(config.scripted)
    scripted_spans: dict[int, list[tuple[int, int]]] = {}
    for event in config.scripted:
        if event.segment is not None:
            scripted_spans.setdefault(event.segment, []).append((event.start, event.end))

    # Thefts and leaks: one at a time per segment, on segments that end at a station.
    for segment in range(n - 1):
        busy: list[tuple[int, int]] = list(scripted_spans.get(segment, []))
        count = rng.poisson(rates.theft_per_segment_month * minutes / MINUTES_PER_MONTH)
        for _ in range(count):
            start = _theft_start(rng, minutes, rates.theft_night_share, config.local_minute_of_day_at_start)
            duration = round(_log_uniform(rng, *rates.theft_minutes))
            end = min(start + duration, minutes)
            fraction = _log_uniform(rng, *rates.theft_fraction)
            ramp_open = int(
                rng.integers(int(rates.theft_ramp_minutes[0]), int(rates.theft_ramp_minutes[1]) + 1)
            )
            ramp_close = int(
                rng.integers(int(rates.theft_ramp_minutes[0]), int(rates.theft_ramp_minutes[1]) + 1)
            )
            position = float(rng.uniform(0.05, 0.95))
            if end - start < 2 or _overlaps(busy, start, end):
                continue
            third = max(1, (end - start) // 3)
            busy.append((start, end))
            events.append(
                Event(
                    "theft",
                    "tap",
                    start,
                    end,
                    (segment, segment + 1),
                    segment=segment,
                    magnitude=fraction,
                    unit="fraction_of_flow",
                    position=position,
                    ramp_open=min(ramp_open, third),
                    ramp_close=min(ramp_close, third),
                )
            )
        for start in _poisson_starts(rng, rates.leak_per_segment_month, minutes):
            duration = round(60 * _log_uniform(rng, *rates.leak_hours))
            end = min(int(start) + duration, minutes)
            fraction = _log_uniform(rng, *rates.leak_fraction)
            position = float(rng.uniform(0.05, 0.95))
            if end - int(start) < 2 or _overlaps(busy, int(start), end):
                continue
            busy.append((int(start), end))
            events.append(
                Event(
                    "leak",
                    "growing",
                    int(start),
                    end,
                    (segment, segment + 1),
                    segment=segment,
                    magnitude=fraction,
                    unit="fraction_of_flow",
                    position=position,
                )
            )

    # Sensor faults: a data problem at one station, never a change in the line itself.
    for station in range(n):
        for start in _poisson_starts(rng, rates.sensor_fault_per_station_month, minutes):
            kind = str(rng.choice(["stuck", "spike", "drift", "dropout"]))
            sensor = str(rng.choice(SENSORS))
            start_i = int(start)
            magnitude = 0.0
            unit = ""
            if kind == "stuck":
                duration = int(rng.integers(30, 361))
                unit = "frozen_value"
            elif kind == "spike":
                duration = int(rng.integers(1, 4))
                magnitude = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.3))
                unit = "fraction_of_reading"
            elif kind == "drift":
                duration = int(rng.integers(6 * 60, 72 * 60 + 1))
                magnitude = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.10))
                unit = "fraction_of_reading_at_end"
            else:
                duration = int(rng.integers(5, 121))
                if rng.random() < 0.5:
                    sensor = ALL_SENSORS  # the whole station goes silent: rows are missing
                unit = "missing"
            end = min(start_i + duration, minutes)
            if end <= start_i:
                continue
            events.append(
                Event(
                    "sensor_fault",
                    kind,
                    start_i,
                    end,
                    (station,),
                    station=station,
                    sensor=sensor,
                    magnitude=magnitude,
                    unit=unit,
                )
            )

    if not config.normal_life:
        return events

    everyone = tuple(range(n))
    settle = round(2 * level_tau) + 15
    for start in _poisson_starts(rng, rates.setpoint_change_per_day * 30, minutes):
        ramp = int(rng.integers(10, 21))
        target = float(rng.uniform(0.85, 1.10))
        end = min(int(start) + ramp + settle, minutes)
        events.append(
            Event(
                "transient",
                "setpoint_change",
                int(start),
                end,
                everyone,
                magnitude=target,
                unit="fraction_of_nominal_flow",
                ramp_open=ramp,
            )
        )
    for start in _poisson_starts(rng, rates.maintenance_per_month, minutes):
        hours = float(rng.uniform(2.0, 6.0))
        effect_end = min(int(start) + round(hours * 60), minutes)
        level = float(rng.uniform(0.5, 0.7))
        events.append(
            Event(
                "maintenance",
                "line_slowdown",
                int(start),
                min(effect_end + settle, minutes),
                everyone,
                magnitude=level,
                unit="fraction_of_flow",
                ramp_open=20,
                ramp_close=20,
                effect_end=effect_end,
            )
        )
    for station in range(n):
        for start in _poisson_starts(rng, rates.pump_stop_per_station_month, minutes):
            stopped = int(rng.integers(5, 46))
            effect_end = min(int(start) + stopped, minutes)
            # The stopped station's tank filled while it stood; it drains at the level trim's 20 % limit,
            # and the stations downstream follow one level-loop lag each.
            recovery = round(stopped * 5.5 + 4 * level_tau) + 30
            events.append(
                Event(
                    "transient",
                    "pump_stop",
                    int(start),
                    min(effect_end + recovery, minutes),
                    tuple(range(station, n)),
                    station=station,
                    magnitude=float(stopped),
                    unit="minutes_stopped",
                    effect_end=effect_end,
                )
            )
    for segment in range(n):
        for start in _poisson_starts(rng, rates.valve_manoeuvre_per_segment_month, minutes):
            duration = int(rng.integers(15, 91))
            effect_end = min(int(start) + duration, minutes)
            events.append(
                Event(
                    "transient",
                    "valve_manoeuvre",
                    int(start),
                    min(effect_end + 10, minutes),
                    (segment,),
                    station=segment,
                    magnitude=float(rng.uniform(3.0, 10.0)),
                    unit="bar_throttled",
                    ramp_open=5,
                    ramp_close=5,
                    effect_end=effect_end,
                )
            )
    return events


def number_events(events: list[Event]) -> list[Event]:
    """Sort by start (then type, place) and give ids ``EV-0001``...; deterministic for a given list."""

    def key(event: Event) -> tuple[int, str, str, int, int, str]:
        place = event.segment if event.segment is not None else (event.station or 0)
        return (event.start, event.event_type, event.subtype, place, event.end, event.sensor)

    ordered = sorted(events, key=key)
    width = max(4, len(str(len(ordered))))
    return [replace(event, event_id=f"EV-{i + 1:0{width}d}") for i, event in enumerate(ordered)]


def ramp_envelope(length: int, ramp_open: int, ramp_close: int) -> Array:
    """1 on the plateau, a linear ramp at each end, strictly positive on every minute of the span."""
    index = np.arange(length, dtype=np.float64)
    opening = (index + 1) / max(ramp_open, 1)
    closing = (length - index) / max(ramp_close, 1)
    return np.clip(np.minimum(opening, closing), 0.0, 1.0)


@dataclass
class Drivers:
    """What the events and the dispatcher impose on the line, minute by minute."""

    schedule: Array  # (T,) fraction of nominal flow the dispatcher asks for
    forced_off: npt.NDArray[np.bool_]  # (T, N) pump stopped by an event
    extraction: Array  # (T, N) fraction of segment inflow taken out along the segment
    tap_position: Array  # (T, N)
    valve_bar: Array  # (T, N) extra throttling at the discharge, at nominal flow


def build_drivers(config: SimulationConfig, events: list[Event], hour_of_day: Array) -> Drivers:
    minutes = config.minutes
    n = config.stations
    schedule = np.ones(minutes)
    if config.normal_life:
        # Demand peaks in the evening and bottoms out before dawn.
        schedule = schedule + config.daily_amplitude * np.cos(2 * np.pi * (hour_of_day - 19.0) / 24.0)
    # Set points are steps held until the next change, reached along a ramp.
    level = np.ones(minutes)
    changes = sorted((e for e in events if e.subtype == "setpoint_change"), key=lambda e: e.start)
    current = 1.0
    for event in changes:
        ramp = max(event.ramp_open, 1)
        stop = min(event.start + ramp, minutes)
        steps = np.arange(1, stop - event.start + 1) / ramp
        level[event.start : stop] = current + (event.magnitude - current) * steps
        level[stop:] = event.magnitude
        current = event.magnitude
    schedule = schedule * level
    for event in events:
        if event.subtype != "line_slowdown":
            continue
        stop = event.effect_end if event.effect_end is not None else event.end
        length = stop - event.start
        envelope = ramp_envelope(length, event.ramp_open, event.ramp_close)
        schedule[event.start : stop] *= 1.0 - (1.0 - event.magnitude) * envelope

    forced_off = np.zeros((minutes, n), dtype=bool)
    extraction = np.zeros((minutes, n))
    tap_position = np.full((minutes, n), 0.5)
    valve_bar = np.zeros((minutes, n))
    for event in events:
        length = event.end - event.start
        if event.event_type == "theft" and event.segment is not None:
            envelope = ramp_envelope(length, event.ramp_open, event.ramp_close)
            extraction[event.start : event.end, event.segment] = event.magnitude * envelope
            tap_position[event.start : event.end, event.segment] = event.position or 0.5
        elif event.event_type == "leak" and event.segment is not None:
            growth = np.arange(1, length + 1) / length
            extraction[event.start : event.end, event.segment] = event.magnitude * growth
            tap_position[event.start : event.end, event.segment] = event.position or 0.5
        elif event.subtype == "pump_stop" and event.station is not None:
            forced_off[event.start : event.effect_end, event.station] = True
        elif event.subtype == "valve_manoeuvre" and event.station is not None:
            stop = event.effect_end if event.effect_end is not None else event.end
            envelope = ramp_envelope(stop - event.start, event.ramp_open, event.ramp_close)
            valve_bar[event.start : stop, event.station] += event.magnitude * envelope
    return Drivers(schedule, forced_off, extraction, tap_position, valve_bar)


@dataclass(frozen=True)
class RowEvents:
    """Per row: the label and the index (into the event list) of the event naming it, or -1."""

    label: npt.NDArray[np.int8]
    event_index: npt.NDArray[np.int32]


def paint_rows(events: list[Event], minutes: int, stations: int) -> RowEvents:
    """Mark each event's span on its stations; overlapping events resolve by ``PRIORITY``."""
    event_index = np.full((minutes, stations), -1, dtype=np.int32)
    label = np.zeros((minutes, stations), dtype=np.int8)
    # Paint low priority first, so the most serious (and, among equals, the earliest) lands on top.
    order = sorted(range(len(events)), key=lambda i: (PRIORITY[events[i].event_type], -i))
    for i in order:
        event = events[i]
        columns = list(event.stations)
        event_index[event.start : event.end, columns] = i
        if event.label:
            label[event.start : event.end, columns] = 1
    return RowEvents(label, event_index)
