"""``centinela bench NAME``: run one benchmark module from ``bench/`` (or ``all``)."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from bench.record import RESULTS_DIR, BenchResult, repetition_done
from detector.errors import ConfigError
from devtools.progress import progress_board

# Every benchmark of MEASURE.md, in the order `all` runs them; a module under bench/ each.
BENCHMARKS = (
    "kafka",
    "scoring",
    "buffers",
    "simulate",
    "replay",
    "detector",
    "line",
    "latency",
    "memory",
    "transactions",
    "train",
)


def available() -> list[str]:
    return [name for name in BENCHMARKS if importlib.util.find_spec(f"bench.{name}") is not None]


def print_result(result: BenchResult, console: Console) -> None:
    table = Table(title=f"bench {result.name}")
    table.add_column("kind")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for kind, values in (("figure", result.figures), ("baseline", result.baseline), ("ratio", result.ratio)):
        for key, value in values.items():
            table.add_row(kind, key, f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}")
    for key, target in result.targets.items():
        table.add_row("target", key, target)
    console.print(table)


def run_one(name: str, quick: bool, console: Console) -> BenchResult:
    if importlib.util.find_spec(f"bench.{name}") is None:
        raise ConfigError(f"unknown benchmark {name!r}; available: {', '.join(available())}")
    module = importlib.import_module(f"bench.{name}")
    result: BenchResult = module.run(quick=quick)
    path = result.write()
    print_result(result, console)
    console.print(f"written {path}")
    return result


def results_markdown(results_dir: Path = RESULTS_DIR) -> str:
    """The README's results table, generated from bench/results/*.json."""
    lines = [
        "| bench | figure | value | baseline (same run) | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    for name in BENCHMARKS:
        path = results_dir / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        baseline = ", ".join(f"{k} {v:,.0f}" for k, v in data.get("baseline", {}).items()) or "—"
        ratio = ", ".join(f"{k} {v:.2f}" for k, v in data.get("ratio", {}).items()) or "—"
        target = "; ".join(f"{k} {v}" for k, v in data.get("targets", {}).items()) or "—"
        figures = data.get("figures", {})
        first = True
        for key, value in figures.items():
            lines.append(
                f"| {name if first else ''} | {key} | {value:,.1f} | {baseline if first else ''} "
                f"| {ratio if first else ''} | {target if first else ''} |"
            )
            first = False
    return "\n".join(lines) + "\n"


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        name: str = typer.Argument(..., help=f"One of: all, {', '.join(BENCHMARKS)}."),
        quick: bool = typer.Option(False, "--quick", help="Reduced sizes, for CI smoke runs."),
    ) -> None:
        """Run a benchmark: prints a table and writes bench/results/NAME.json (and RESULTS.md for all)."""
        console = Console()
        names = available() if name == "all" else [name]
        with progress_board() as board:
            benchmarks = board.add("bench", len(names))
            repetitions = board.add("repetitions", None)
            token = repetition_done.set(lambda done, of: repetitions.update(completed=done, total=of))
            try:
                for index, each in enumerate(names):
                    benchmarks.update(label=f"bench {each} ({index + 1} of {len(names)})")
                    repetitions.update(completed=0, total=0)
                    run_one(each, quick, console)
                    benchmarks.advance()
            finally:
                repetition_done.reset(token)
        if name == "all":
            summary = RESULTS_DIR / "RESULTS.md"
            summary.write_text(results_markdown())
            console.print(f"summary written {summary}")
