"""Progress of long commands (evaluate, bench): a rich bar with a count, the time spent and an ETA.

It goes to stderr, so reports and tables on stdout stay clean when piped, and only to a terminal:
off a TTY (CI, logs, ``2> file``) every call is a no-op and nothing is printed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Step:
    """One counted task of a :class:`Board`; every method does nothing on a silent board."""

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def advance(self, steps: float = 1.0) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, steps)

    def update(
        self, *, completed: float | None = None, total: float | None = None, label: str | None = None
    ) -> None:
        """Set the count, the total (when first known or corrected) and the task's label."""
        if self._progress is None:
            return
        fields: dict[str, Any] = {}
        if completed is not None:
            fields["completed"] = completed
        if total is not None:
            fields["total"] = total
        if label is not None:
            fields["description"] = label
        self._progress.update(self._task, **fields)


class Board:
    """Tasks shown together; ``add`` one per counted piece of work."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def add(self, label: str, total: float | None) -> Step:
        """A task counting to ``total`` (``None``: not known yet; set it later with ``update``)."""
        if self._progress is None:
            return Step(None, None)
        return Step(self._progress, self._progress.add_task(label, total=total))

    def note(self, text: str) -> None:
        """A line printed above the bars (a stage reached); silent off a terminal."""
        if self._progress is not None:
            self._progress.console.log(text)


@contextmanager
def progress_board(*, enabled: bool | None = None, console: Any = None) -> Iterator[Board]:
    """A :class:`Board` drawn on stderr while the block runs. ``enabled`` defaults to "stderr is a
    terminal"; ``console`` (a rich Console) replaces stderr, for tests."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield Board(None)
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
    ) as progress:
        yield Board(progress)
