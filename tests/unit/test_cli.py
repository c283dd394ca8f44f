from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from centinela import __version__
from centinela.cli import app


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"centinela {__version__}"


def test_help_lists_subcommands_without_importing_tensorflow() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from centinela.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "assert 'tensorflow' not in sys.modules; print(r.output)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "bench" in out.stdout
    assert "evaluate" in out.stdout
