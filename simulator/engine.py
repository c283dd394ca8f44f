"""``simulate(config)``: events, then flows and tanks, then hydraulics, then instruments, then labels."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

import numpy as np
import numpy.typing as npt

from simulator.batches import BatchState, simulate_batches
from simulator.cascade import CascadeResult, run_cascade
from simulator.clock import draw_offsets
from simulator.events import Drivers, build_drivers, draw_events, number_events, paint_rows
from simulator.faults import apply_faults
from simulator.line import Hydraulics, Line, draw_line, product_temperature, solve_hydraulics
from simulator.linepack import MAX_PACK_RATE, PackModel, mean_pressure_bar, pack_target_m3h
from simulator.noise import ar1, measure, quantise
from simulator.result import SimulationResult
from simulator.scenario import SENSORS, SimulationConfig

logger = logging.getLogger(__name__)

Array = npt.NDArray[np.float64]
Progress = Callable[[str, float], None]

# Independent random streams, so changing one part (say, the fault rate) leaves the others' draws alone.
# New streams go at the end: spawning keeps the earlier children's seeds.
_STREAMS = ("line", "events", "process", "batches", "instruments", "clock")

# Physically impossible below zero; a noisy zero is clipped like a transmitter's output stage does.
_NON_NEGATIVE = frozenset({"flow", "pressure", "pump_rpm", "tank_level", "power", "suction_pressure"})


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children, strict=True)}


@dataclass(frozen=True)
class _Solved:
    cascade: CascadeResult
    batches: BatchState
    hydraulics: Hydraulics
    pack_capacity: Array  # (T, N) m3 per bar of mean pressure
    residual_m3h: float  # largest gap between the pack asked and what the final pressures ask


def _flows_and_pressures(
    config: SimulationConfig,
    line: Line,
    drivers: Drivers,
    supply: Array,
    targets: Array,
    *,
    batch_rng: np.random.Generator,
    report: Progress,
) -> _Solved:
    """Cascade (flows, tanks, line pack) then hydraulics (pressures, pumps).

    The batches follow the origin's flow, which nothing downstream touches (the origin's tank is
    fed by the supply), so a cascade of the origin alone gives them; with line pack on, the line's
    cascade then asks ``PackModel`` for each minute's pack as it steps. ``residual_m3h`` compares
    what it asked with what the final pressures ask (``linepack`` says why they differ at all).
    """

    # The origin alone first: its flow is the same element by element as in the whole line's cascade.
    origin = run_cascade(
        dataclasses.replace(line, level_setpoint=line.level_setpoint[:1]),
        supply=supply,
        targets=targets[:, :1],
        forced_off=drivers.forced_off[:, :1],
        extraction=drivers.extraction[:, :1],
    )
    batches = simulate_batches(config, line, origin.flow[:, 0], batch_rng)
    model = PackModel(config, line, batches, drivers.extraction, drivers.tap_position)

    def progress(fraction: float) -> None:
        report("flows", fraction)

    cascade = run_cascade(
        line,
        supply=supply,
        targets=targets,
        forced_off=drivers.forced_off,
        extraction=drivers.extraction,
        pack=model if config.line_pack else None,
        max_pack_rate=MAX_PACK_RATE * config.nominal_flow,
        progress=progress,
    )
    hydraulics = solve_hydraulics(
        line,
        flow=cascade.flow,
        running=cascade.running,
        level=cascade.level,
        extraction=drivers.extraction,
        tap_position=drivers.tap_position,
        valve_bar=drivers.valve_bar * (cascade.flow / config.nominal_flow) ** 2,
        rho_segment=batches.rho_segment,
        rho_station=batches.rho_station,
        friction_factor=batches.friction_factor,
    )
    residual = 0.0
    if config.line_pack:
        final = pack_target_m3h(model.capacity, mean_pressure_bar(hydraulics))
        residual = float(np.abs(final - model.asked).max(initial=0.0))
        logger.debug("line pack: asked and final pack rates differ by up to %.4g m3/h", residual)
    return _Solved(cascade, batches, hydraulics, model.capacity, residual)


def simulate(config: SimulationConfig | None = None, progress: Progress | None = None) -> SimulationResult:
    """Simulate the line described by ``config``; same config (seed included), same result."""
    config = config or SimulationConfig()
    report = progress or (lambda stage, fraction: None)
    rng = _streams(config.seed)
    minutes, n = config.minutes, config.stations
    start = np.datetime64(config.start.astimezone(UTC).replace(tzinfo=None), "ns")
    times = start + np.arange(minutes).astype("timedelta64[m]").astype("timedelta64[ns]")
    hour_of_day = (np.arange(minutes) + config.local_minute_of_day_at_start) % 1440 / 60.0

    line = draw_line(config, rng["line"])
    events = draw_events(config, rng["events"])
    drivers = build_drivers(config, events, hour_of_day)

    process = rng["process"]
    common = 1.0 + 0.003 * config.process_noise * ar1(process, minutes, 1, 0.98)[:, 0]
    supply = config.nominal_flow * drivers.schedule * common
    controller_error = 1.0 + 0.002 * config.process_noise * ar1(process, minutes, n, 0.9)
    targets = supply[:, None] * controller_error
    report("flows", 0.0)
    solved = _flows_and_pressures(
        config, line, drivers, supply, targets, batch_rng=rng["batches"], report=report
    )
    cascade, batches, hydraulics = solved.cascade, solved.batches, solved.hydraulics
    report("hydraulics", 1.0)
    inlet_temperature = 20.0 + 4.0 + batches.temperature_offset
    temperature = product_temperature(line, inlet_temperature, hour_of_day)
    truth: dict[str, Array] = {
        "flow": cascade.flow,
        "pressure": hydraulics.discharge_bar,
        "pump_rpm": hydraulics.rpm,
        "tank_level": cascade.level,
        "power": hydraulics.power_kw,
        "suction_pressure": hydraulics.suction_bar,
        "temperature": temperature,
    }

    instruments = rng["instruments"].spawn(len(SENSORS))
    readings: dict[str, Array] = {}
    for i, sensor in enumerate(SENSORS):
        readings[sensor] = measure(instruments[i], truth[sensor], config.noise[sensor], config.noise_scale)
        report("instruments", (i + 1) / (len(SENSORS) + 1))
    # A speed pickup reads a true zero at standstill; noise around zero would be an artefact.
    readings["pump_rpm"][truth["pump_rpm"] == 0.0] = 0.0
    present = np.ones((minutes, n), dtype=bool)
    all_events = number_events(events + batches.events)
    all_events = apply_faults(all_events, readings, present)
    for sensor in SENSORS:
        values = readings[sensor]
        if sensor in _NON_NEGATIVE:
            np.maximum(values, 0.0, out=values)
        if config.quantise:
            readings[sensor] = quantise(values, config.noise[sensor].quantum)
    report("instruments", 1.0)

    # The original single-station layout is written on the minute whatever the clocks say (writer.py).
    offsets = draw_offsets(rng["clock"], minutes, n, config.clock_skew_s, config.clock_wander_s)
    rows = paint_rows(all_events, minutes, n)
    extraction_m3h = drivers.extraction * cascade.flow
    logger.debug("simulated %d stations x %d minutes, %d events", n, minutes, len(all_events))
    return SimulationResult(
        config=config,
        line=line,
        times=times,
        readings=readings,
        truth=truth,
        present=present,
        label=rows.label,
        event_index=rows.event_index,
        events=all_events,
        extraction_m3h=extraction_m3h,
        products=batches.products,
        pack_m3h=cascade.pack,
        pack_capacity_m3_per_bar=solved.pack_capacity,
        segment_mean_bar=mean_pressure_bar(hydraulics),
        line_pack_residual_m3h=solved.residual_m3h,
        clock_offset_s=offsets,
    )
