"""``centinela replay``: a CSV into readings on a Kafka topic, paced by its timestamps or flat out."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from detector.errors import ConfigError

logger = logging.getLogger(__name__)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``2m``, ``1.5h``, ``250ms`` or a bare number of seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 90s, 2m, 1h)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def parse_moment(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 date or time; without an offset it is UTC, like the file's own timestamps."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--{name}: not an ISO 8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_renames(pairs: list[str]) -> dict[str, str]:
    renames: dict[str, str] = {}
    for pair in pairs:
        column, equals, target = pair.partition("=")
        if not equals or not column.strip() or not target.strip():
            raise ConfigError(f"--rename wants COLUMN=SENSOR, got {pair!r}")
        renames[column.strip()] = target.strip()
    return renames


def parse_sensors(text: str | None) -> tuple[str, ...] | None:
    from detector.readings import DEFAULT_SENSORS

    if text is None:
        return DEFAULT_SENSORS
    if text.strip().lower() == "all":
        return None
    sensors = tuple(name.strip() for name in text.split(",") if name.strip())
    if not sensors:
        raise ConfigError("--sensors is empty")
    return sensors


def _print_summary(summary: Any, console: Any) -> None:
    from rich.table import Table

    table = Table(title="replay")
    table.add_column("")
    table.add_column("value", justify="right")
    rows = [
        ("rows read", f"{summary.rows_read:,}"),
        ("rejected (bad rows)", f"{summary.rejected:,}"),
        ("filtered (station, time cut)", f"{summary.filtered:,}"),
        ("dropped / duplicated (disorder)", f"{summary.dropped:,} / {summary.duplicated:,}"),
        ("queued", f"{summary.queued:,}"),
        ("sent (delivered)", f"{summary.delivered:,}"),
        ("delivery errors", f"{summary.delivery_errors:,}"),
        ("passes", f"{summary.passes}"),
        ("seconds", f"{summary.seconds:,.2f}"),
        ("readings/s", f"{summary.readings_per_s:,.0f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if summary.rejected_by_reason:
        reasons = ", ".join(
            f"{reason} {count:,}" for reason, count in sorted(summary.rejected_by_reason.items())
        )
        console.print(f"bad rows by reason: {reasons}")
    if summary.first_delivery_error:
        console.print(f"[red]first delivery error: {summary.first_delivery_error}[/red]")


def register(app: typer.Typer) -> None:
    @app.command("replay")
    def replay(  # noqa: PLR0917 - a typer command takes its options as parameters
        path: Path = typer.Argument(
            ..., help="CSV file: the original data set's layout, the simulator's, or any."
        ),
        topic: str | None = typer.Option(
            None, "--topic", help="Readings topic (default: the settings' readings topic)."
        ),
        speed: str = typer.Option(
            "max", "--speed", help="'max' (as fast as Kafka takes it) or a factor: 60 = 1 h/min."
        ),
        start: str | None = typer.Option(
            None, "--start", help="First event time to send (ISO 8601; UTC if naive)."
        ),
        end: str | None = typer.Option(None, "--end", help="Send event times before this (ISO 8601)."),
        loop: bool = typer.Option(
            False, "--loop", help="Repeat until interrupted, timestamps shifted each pass."
        ),
        passes: int = typer.Option(1, "--passes", min=1, help="Play the file this many times (shifted)."),
        station: list[str] = typer.Option([], "--station", help="Send only this station (repeatable)."),
        station_id: str = typer.Option(
            "EST-01", "--station-id", help="Station of files with no station column."
        ),
        rename: list[str] = typer.Option([], "--rename", help="COLUMN=SENSOR (or =timestamp, =station_id)."),
        sensors: str | None = typer.Option(
            None, "--sensors", help="Comma-separated sensors to send, or 'all' (default: the model's five)."
        ),
        shuffle_within: str = typer.Option(
            "0s", "--shuffle-within", help="Reorder readings within this span."
        ),
        duplicate_rate: float = typer.Option(0.0, "--duplicate-rate", help="Share of readings sent twice."),
        drop_rate: float = typer.Option(0.0, "--drop-rate", help="Share of readings never sent."),
        seed: int = typer.Option(0, "--seed", help="Seed of the disorder."),
        partitions: int = typer.Option(
            6, "--partitions", min=1, help="Partitions when the topic is created."
        ),
        compression: str = typer.Option("lz4", "--compression", help="lz4, zstd, snappy, gzip or none."),
        strict: bool = typer.Option(
            False, "--strict", help="Stop at the first bad row instead of skipping it."
        ),
        config: Path | None = typer.Option(
            None, "--config", help="Settings TOML file (Kafka connection, topics)."
        ),
        summary_json: Path | None = typer.Option(None, "--summary-json", help="Also write the summary here."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar (on a terminal)."),
    ) -> None:
        """Stream a CSV of readings into Kafka, keyed by station; labels and event ids are never sent."""
        from rich.console import Console

        from kafkakit.check import check_connection
        from kafkakit.config import kafka_client_config
        from replay.csv_source import SourceOptions
        from replay.disorder import DisorderOptions
        from replay.pacing import parse_speed
        from replay.producer import ReplayOptions, replay_csv
        from replay.settings import load_replay_settings

        if not path.is_file():  # before Kafka: a typo in the file name is not a broker problem
            raise ConfigError(f"{path}: no such file")
        settings = load_replay_settings(config)
        options = ReplayOptions(
            source=SourceOptions(
                sensors=parse_sensors(sensors),
                rename=parse_renames(rename),
                default_station=station_id,
                stations=frozenset(station) if station else None,
                start=parse_moment(start, "start"),
                end=parse_moment(end, "end"),
                strict=strict,
            ),
            disorder=DisorderOptions(
                shuffle_within=parse_duration(shuffle_within),
                duplicate_rate=duplicate_rate,
                drop_rate=drop_rate,
                seed=seed,
            ),
            speed=parse_speed(speed),
            passes=None if loop else passes,
            partitions=partitions,
            compression=compression,
        )
        console = Console(stderr=True)
        target = topic or settings.topics.readings
        client_config = kafka_client_config(settings.kafka)
        check_connection(client_config)  # a wrong password or CA fails here in seconds, not in a retry loop
        show_progress = progress and sys.stderr.isatty()
        if show_progress:
            summary = _with_progress(path, target, options, client_config, console)
        else:
            summary = replay_csv(path, target, options, client_config)
        _print_summary(summary, Console())
        if summary_json is not None:
            summary_json.write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
        if summary.delivery_errors:
            raise typer.Exit(1)


def _with_progress(path: Path, topic: str, options: Any, client_config: dict[str, Any], console: Any) -> Any:
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from replay.producer import replay_csv

    size = max(path.stat().st_size, 1)
    total = None if options.passes is None else size * options.passes
    with Progress(
        TextColumn("[bold]replay[/bold] pass {task.fields[pass_no]}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=total, pass_no=1, rows=0)
        rows = 0

        def on_block(block: Any) -> None:
            nonlocal rows
            rows += block.rows_read
            if block.bytes_done:
                done = block.pass_index * size + block.bytes_done
                bar.update(task, completed=done, pass_no=block.pass_index + 1, rows=rows)

        return replay_csv(path, topic, options, client_config, on_block=on_block)
