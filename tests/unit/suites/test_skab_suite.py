from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from evaluation.suites import skab


@pytest.mark.slow
def test_quick_mode_writes_the_report_in_seconds(skab_root: Path, tmp_path: Path) -> None:
    started = time.perf_counter()
    report = skab.run(tmp_path / "en", quick=True, lang="en", data_dir=skab_root)
    assert time.perf_counter() - started < 30
    written = json.loads((tmp_path / "en" / "report.json").read_text(encoding="utf-8"))
    assert written["ours"].keys() >= {"f1", "far", "mar"}
    assert 0.0 <= written["ours"]["f1"] <= 1.0
    assert written["published"]["Conv-AE"]["f1"] == 0.78
    assert written["files"] == list(skab.QUICK_FILES)
    assert report["quick"] is True
    assert (tmp_path / "en" / "plots" / "comparison.png").stat().st_size > 0
    assert "Outlier detection" in (tmp_path / "en" / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_spanish_report(skab_root: Path, tmp_path: Path) -> None:
    skab.run(tmp_path / "es", quick=True, lang="es", data_dir=skab_root)
    text = (tmp_path / "es" / "report.md").read_text(encoding="utf-8")
    assert "Detección de anomalías" in text
    assert "Outlier detection" not in text
