"""``centinela evaluate SUITE --out DIR``: evaluation reports in the layout of MEASURE.md."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import typer

from detector.errors import ConfigError

# A module under evaluation/suites/ each, with ``run(out: Path, quick: bool, lang: str) -> dict``.
SUITES = ("seed", "skab", "sim", "calibration")


def _seeds(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise ConfigError(f"--seeds must be comma-separated integers, got {text!r}") from error


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(  # noqa: PLR0917 - typer maps each option to a parameter
        suite: str = typer.Argument(..., help=f"One of: {', '.join(SUITES)}."),
        out: Path | None = typer.Option(
            None, "--out", help="Folder for report.json, report.md, plots/ (default out/eval/SUITE)."
        ),
        quick: bool = typer.Option(False, "--quick", help="Reduced sizes, for CI."),
        lang: str = typer.Option("en", "--lang", help="Language of report.md: en or es."),
        offline_line: bool = typer.Option(
            False,
            "--offline-line",
            help="sim only: segment alerts from the offline oracle (detector.line.offline), no Kafka, "
            "no autoencoder; fast, and the reference the live run is compared with.",
        ),
        seeds: str | None = typer.Option(
            None, "--seeds", help="sim only: simulator seeds, comma-separated (default 7,8,9; quick: 7)."
        ),
    ) -> None:
        """Evaluate a detector on a suite and write report.json, report.md and plots/."""
        module_name = f"evaluation.suites.{suite}"
        if suite not in SUITES or importlib.util.find_spec(module_name) is None:
            raise ConfigError(f"unknown or unavailable suite {suite!r}; suites: {', '.join(SUITES)}")
        extra: dict[str, Any] = {}
        if suite == "sim":
            extra = {"offline_line": offline_line, "seeds": _seeds(seeds)}
        elif offline_line or seeds:
            raise ConfigError("--offline-line and --seeds apply to the sim suite only")
        module = importlib.import_module(module_name)
        module.run(out=out or Path("out/eval") / suite, quick=quick, lang=lang, **extra)
