"""``centinela simulate``: a line of pumping stations with labelled thefts, leaks and faults, as CSV."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from detector.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from simulator.engine import Progress


def parse_start(text: str) -> datetime:
    """``2025-01-01``, ``2025-01-01T06:00`` or with an offset/``Z``; no offset means UTC."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise ConfigError(f"--start {text!r} is not an ISO date or date-time") from error
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_range(text: str, option: str) -> tuple[float, float]:
    """``LOW:HIGH`` as two floats, low <= high."""
    try:
        low, high = (float(part) for part in text.split(":"))
    except ValueError as error:
        raise ConfigError(f"{option} takes LOW:HIGH, e.g. 0.005:0.15, not {text!r}") from error
    if low > high:
        raise ConfigError(f"{option}: low {low} is above high {high}")
    return low, high


@contextmanager
def _progress_bar(console: Console) -> Iterator[Progress]:
    """A rich progress bar on a terminal; a silent callback otherwise (logs and CI stay clean)."""
    if not console.is_terminal:
        yield lambda stage, fraction: None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description:<12}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, fraction: float) -> None:
            if stage not in tasks:
                tasks[stage] = int(bar.add_task(stage, total=1.0))
            bar.update(tasks[stage], completed=fraction)  # type: ignore[arg-type]

        yield update


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_command(  # noqa: PLR0917 - a typer command's options are its parameters
        out: Path = typer.Option(
            Path("out/sim"),
            "--out",
            help="Folder for readings.csv, events.csv, scenario.json and topology.toml.",
        ),
        stations: int = typer.Option(6, "--stations", min=1, help="Stations in series on the line."),
        days: float = typer.Option(
            30.0, "--days", min=0.01, help="Length of the simulation (one-minute samples)."
        ),
        seed: int = typer.Option(7, "--seed", help="Random seed: same seed and options, same bytes."),
        start: str = typer.Option(
            "2025-01-01", "--start", help="First timestamp (UTC unless an offset is given)."
        ),
        layout: str = typer.Option(
            "multi",
            "--layout",
            help="multi: every station, all sensors, labels and event ids; "
            "original: one station in the original data set's columns.",
        ),
        station: str | None = typer.Option(
            None, "--station", help="Station written by --layout original (default: the second, e.g. EST-02)."
        ),
        theft_rate: float = typer.Option(
            2.0, "--theft-rate", min=0.0, help="Expected thefts per segment per 30 days."
        ),
        theft_size: str = typer.Option(
            "0.005:0.15", "--theft-size", help="Extraction as a fraction of flow, LOW:HIGH (log-uniform)."
        ),
        theft_minutes: str = typer.Option(
            "10:360", "--theft-minutes", help="Theft duration, LOW:HIGH minutes."
        ),
        leak_rate: float = typer.Option(
            0.1, "--leak-rate", min=0.0, help="Expected leaks per segment per 30 days."
        ),
        fault_rate: float = typer.Option(
            1.0, "--fault-rate", min=0.0, help="Expected sensor faults per station per 30 days."
        ),
        normal_life: bool = typer.Option(
            True,
            "--normal-life/--steady",
            help="Daily demand cycle, set-point changes, pump stops, batches, valves, maintenance (or none).",
        ),
        noise_scale: float = typer.Option(
            1.0,
            "--noise-scale",
            min=0.0,
            help="Scale of instrument noise and drift (0: perfect instruments).",
        ),
        line_pack: bool = typer.Option(
            True,
            "--line-pack/--no-line-pack",
            help="Segments pack and unpack with their pressure (product and pipe elasticity), or are rigid.",
        ),
        clock_skew: float = typer.Option(
            45.0,
            "--clock-skew",
            min=0.0,
            max=120.0,
            help=(
                "Largest station clock offset, seconds: timestamps are off by up to this (0: exact "
                "clocks); topology.toml declares clock_tolerance_s = 2 x this, rounded up."
            ),
        ),
        plot: bool = typer.Option(
            False, "--plot", help="Also write plot_segment.png: a few days of one segment."
        ),
        plot_segment: int | None = typer.Option(
            None,
            "--plot-segment",
            min=0,
            help="Segment to plot (0 = first station to second); default: the largest theft's.",
        ),
        plot_days: float = typer.Option(3.0, "--plot-days", min=0.1, help="Days shown in the plot."),
    ) -> None:
        """Simulate pumping-station telemetry with labelled thefts, leaks, sensor faults and transients."""
        from rich.console import Console
        from rich.table import Table

        from simulator import EventRates, SimulationConfig, simulate
        from simulator.writer import LAYOUTS, write_outputs

        if layout not in LAYOUTS:
            raise ConfigError(f"--layout must be one of {', '.join(LAYOUTS)}")
        rates = dataclasses.replace(
            EventRates(),
            theft_per_segment_month=theft_rate,
            theft_fraction=parse_range(theft_size, "--theft-size"),
            theft_minutes=parse_range(theft_minutes, "--theft-minutes"),
            leak_per_segment_month=leak_rate,
            sensor_fault_per_station_month=fault_rate,
        )
        config = SimulationConfig(
            stations=stations,
            days=days,
            seed=seed,
            start=parse_start(start),
            rates=rates,
            normal_life=normal_life,
            noise_scale=noise_scale,
            line_pack=line_pack,
            clock_skew_s=clock_skew,
        )
        console = Console(stderr=True)
        began = time.perf_counter()
        with _progress_bar(console) as progress:
            result = simulate(config, progress=progress)
            simulated = time.perf_counter()
            written = write_outputs(
                result,
                out,
                layout="original" if layout == "original" else "multi",
                station=station,
                progress=lambda fraction: progress("writing", fraction),
            )
        finished = time.perf_counter()
        plot_path: Path | None = None
        if plot:
            from simulator.plots import plot_segment as draw

            plot_path = draw(result, out / "plot_segment.png", segment=plot_segment, days=plot_days)

        table = Table(title=f"centinela simulate: {stations} stations x {days:g} days, seed {seed}")
        table.add_column("what")
        table.add_column("value", justify="right")
        table.add_row("rows written", f"{written.rows:,}")
        counts: dict[str, int] = {}
        for event in result.events:
            key = (
                event.event_type
                if event.event_type in ("theft", "leak")
                else f"{event.event_type}:{event.subtype}"
            )
            counts[key] = counts.get(key, 0) + 1
        for key in sorted(counts):
            table.add_row(f"events {key}", f"{counts[key]:,}")
        table.add_row("labelled rows (theft/leak)", f"{int(result.label[result.present].sum()):,}")
        table.add_row("line pack", "on" if line_pack else "off")
        table.add_row("clock skew (s, largest)", f"{int(abs(result.clock_offset_s).max(initial=0))}")
        table.add_row("seconds simulating", f"{simulated - began:.1f}")
        table.add_row("seconds writing", f"{finished - simulated:.1f}")
        Console().print(table)
        files = [written.readings, written.events, written.scenario]
        if written.topology is not None:
            files.append(written.topology)
        typer.echo("written " + ", ".join(str(path) for path in files))
        if plot_path is not None:
            typer.echo(f"plot {plot_path}")
