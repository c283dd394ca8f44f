from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.suites.seed import SEED_DATA, run


@pytest.mark.slow
@pytest.mark.skipif(not SEED_DATA.exists(), reason="seed data set not present")
def test_quick_seed_suite_writes_the_measure_layout(tmp_path: Path) -> None:
    report = run(out=tmp_path, quick=True, lang="en")
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["split"]["test"]["windows"] == 195
    for name in ("autoencoder", "isolation_forest", "local_outlier_factor", "original_configuration"):
        model = written["models"][name]
        assert {"precision", "recall", "f1", "roc_auc", "average_precision"} <= set(model)
    assert written["models"]["original_configuration"]["aggregation"] == "mean"
    assert written["models"]["autoencoder_with_labels"]["mode"] == "labels"
    assert report["suite"] == "seed"
    assert (tmp_path / "report.md").exists() and list((tmp_path / "plots").glob("*.png"))
