"""The ``centinela`` console command.

Each package contributes its subcommands through a ``register(app)`` function in its own
``cli`` module, so this file never grows with them. Those modules import heavy libraries
(TensorFlow, confluent-kafka, ONNX Runtime) inside the commands, which keeps ``--help`` instant.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from typing import Any

import typer

from centinela import __version__
from centinela.logs import configure_logging, level_from_environment
from detector.errors import CentinelaError

# Order is the order of the help screen.
COMMAND_MODULES = (
    "centinela.demo",
    "simulator.cli",
    "trainer.cli",
    "replay.cli",
    "stream.cli",
    "stream.topics_cli",
    "devtools.cli",
    "evaluation.cli",
    "bench.cli",
    "devtools.results",
    "devtools.dashboards",
)


def _flags_without_a_type_column() -> None:
    """typer >= 0.29 prints ``<bool>`` beside every on/off flag in --help; a flag takes no value."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_a_type_column()

app = typer.Typer(
    name="centinela",
    help="Streaming anomaly detection for pipeline pumping stations: theft, leaks, faults.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"centinela {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_version_callback, is_eager=True
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level."),
) -> None:
    # --verbose wins over CENTINELA_LOG_LEVEL, which wins over INFO.
    configure_logging(logging.DEBUG if verbose else level_from_environment(logging.INFO))


def _installed(name: str) -> bool:
    """Whether module ``name`` is there; the detector image leaves out bench, devtools and evaluation."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its package is missing, not only the module
        return False


def _register_all() -> None:
    for name in COMMAND_MODULES:
        if not _installed(name):
            continue
        module = importlib.import_module(name)
        module.register(app)


_register_all()


def main() -> None:
    """Entry point: run the CLI, turning Centinela's own errors into a one-line message and exit 2."""
    # TensorFlow's C++ start-up chatter (INFO/WARNING lines and the CUDA probes on a CPU machine)
    # bypasses Python logging; every command that may import it inherits this.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        app()
    except CentinelaError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
