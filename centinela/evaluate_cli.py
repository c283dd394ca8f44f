"""``centinela evaluate SUITE --out DIR``: evaluation reports in the layout of MEASURE.md."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import typer

from detector.errors import ConfigError

# A module under centinela/suites/ each, with ``run(out: Path, quick: bool) -> dict``.
SUITES = ("seed", "skab", "sim", "calibration")


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        suite: str = typer.Argument(..., help=f"One of: {', '.join(SUITES)}."),
        out: Path | None = typer.Option(
            None, "--out", help="Folder for report.json, report.md, plots/ (default out/eval/SUITE)."
        ),
        quick: bool = typer.Option(False, "--quick", help="Reduced sizes, for CI."),
        lang: str = typer.Option("en", "--lang", help="Language of report.md: en or es."),
    ) -> None:
        """Evaluate a detector on a suite and write report.json, report.md and plots/."""
        module_name = f"centinela.suites.{suite}"
        if suite not in SUITES or importlib.util.find_spec(module_name) is None:
            raise ConfigError(f"unknown or unavailable suite {suite!r}; suites: {', '.join(SUITES)}")
        module = importlib.import_module(module_name)
        module.run(out=out or Path("out/eval") / suite, quick=quick, lang=lang)
