"""Progress of long commands: counted and timed on a terminal, silent off one, never on stdout."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console


def test_a_board_on_a_terminal_shows_each_task_with_its_count() -> None:
    from devtools.progress import progress_board

    screen = io.StringIO()
    with progress_board(enabled=True, console=Console(file=screen, force_terminal=True, width=120)) as board:
        assert board.shown
        files = board.add("skab: files", 4)
        for _ in range(4):
            files.advance()
        later = board.add("repetitions", None)
        later.update(completed=2, total=3, label="bench kafka (1 of 2)")
        board.note("stage reached")
    drawn = screen.getvalue()
    assert "skab: files" in drawn and "4/4" in drawn
    assert "bench kafka (1 of 2)" in drawn and "2/3" in drawn
    assert "ETA" in drawn and "stage reached" in drawn


def test_off_a_terminal_the_board_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    from devtools.progress import progress_board

    with progress_board() as board:  # pytest's captured stderr is not a terminal
        assert not board.shown
        step = board.add("seed: epochs", 3)
        step.advance()
        step.update(completed=3, total=3, label="done")
        board.note("nothing")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_median_of_tells_each_repetition() -> None:
    from bench.record import median_of, repetition_done

    told: list[tuple[int, int]] = []
    token = repetition_done.set(lambda done, of: told.append((done, of)))
    try:
        values = iter([5.0, 1.0, 3.0])
        assert median_of(2, lambda: next(values)) == 3.0  # at least 3 repetitions
    finally:
        repetition_done.reset(token)
    assert told == [(1, 3), (2, 3), (3, 3)]
    assert median_of(3, lambda: 1.0) == 1.0  # nobody listening: no error


def test_bench_counts_the_benchmarks_it_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``bench all`` draws one bench task advanced per benchmark and a repetitions task fed by
    ``median_of`` (a board forced on, drawn into a string)."""
    import contextlib

    import typer
    from typer.testing import CliRunner

    from bench import cli as bench_cli
    from bench.record import median_of
    from devtools import progress

    screen = io.StringIO()
    real = progress.progress_board

    @contextlib.contextmanager
    def forced(**_: Any) -> Any:
        with real(enabled=True, console=Console(file=screen, force_terminal=True, width=120)) as board:
            yield board

    ran: list[str] = []

    def fake_run_one(name: str, quick: bool, console: Any) -> None:
        ran.append(name)
        median_of(3, lambda: 1.0)

    monkeypatch.setattr(bench_cli, "progress_board", forced)
    monkeypatch.setattr(bench_cli, "run_one", fake_run_one)
    monkeypatch.setattr(bench_cli, "available", lambda: ["kafka", "scoring"])
    monkeypatch.setattr(bench_cli, "RESULTS_DIR", tmp_path)
    app = typer.Typer()
    bench_cli.register(app)
    app.command("noop")(lambda: None)  # two commands: typer keeps the subcommand name
    result = CliRunner().invoke(app, ["bench", "all"])
    assert result.exit_code == 0, result.output
    assert ran == ["kafka", "scoring"]
    drawn = screen.getvalue()
    assert "bench scoring (2 of 2)" in drawn and "2/2" in drawn and "3/3" in drawn
