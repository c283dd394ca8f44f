from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
NOTEBOOK = ROOT / "notebooks" / "explore.ipynb"
SEED = ROOT.parent / "shared" / "datasets" / "rebombeo_huachicoleo.csv"


@pytest.mark.slow
@pytest.mark.skipif(not SEED.exists(), reason="seed data set not present")
def test_explore_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits this process's environment.
    monkeypatch.setenv("CENTINELA_SEED_DATA", str(SEED))
    monkeypatch.setenv("CENTINELA_NOTEBOOK_QUICK", "1")
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
    # Every plotting cell shows its figure (the plot helpers must not switch the inline backend off).
    plotting = [cell for cell in notebook.cells if cell.cell_type == "code" and "plt." in cell.source]
    assert plotting
    for cell in plotting:
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        assert images, f"no figure rendered by the cell starting {cell.source[:60]!r}"
