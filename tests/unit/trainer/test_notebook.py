from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
NOTEBOOK = ROOT / "notebooks" / "explore.ipynb"
SEED = ROOT.parent / "shared" / "datasets" / "rebombeo_huachicoleo.csv"


@pytest.mark.slow
@pytest.mark.skipif(not SEED.exists(), reason="seed data set not present")
def test_explore_notebook_executes(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    os.environ["CENTINELA_SEED_DATA"] = str(SEED)
    os.environ["CENTINELA_NOTEBOOK_QUICK"] = "1"
    client = NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = "".join(
        str(o.get("text", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    assert "autoencoder" in outputs and "F1" in outputs
