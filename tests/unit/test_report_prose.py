"""Each report renderer, on a fixed report, writes exactly the committed markdown, in both languages.

The prose of the reports lives in per-language template files; these golden files pin the rendered
text byte for byte, so moving or editing a template changes a report only where a golden file is
rewritten on purpose (``<name>.json`` holds the renderer, the plot names and the report dictionary;
``<name>.<lang>.md`` what it renders).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from evaluation.suites import calibration_report, sim_report, skab_report
from trainer import reports

GOLDEN = Path(__file__).resolve().parent / "report_golden"

Renderer = Callable[[dict[str, Any], Sequence[str], str], str]
RENDERERS: dict[str, Renderer] = {
    "calibration": lambda report, plots, lang: calibration_report.render_markdown(report, lang, plots),
    "sim": lambda report, plots, lang: sim_report.render_markdown(report, list(plots), lang),
    "skab": skab_report.render_markdown,
    "training": lambda report, plots, lang: reports.render_markdown(report, lang, list(plots)),
}
CASES = sorted(path.stem for path in GOLDEN.glob("*.json"))


def rendered(name: str, lang: str) -> str:
    case = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    return RENDERERS[case["renderer"]](case["report"], case["plots"], lang)


def test_every_renderer_has_a_golden_report() -> None:
    covered = {
        json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))["renderer"] for name in CASES
    }
    assert covered == set(RENDERERS)


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("name", CASES)
def test_the_report_is_the_golden_one(name: str, lang: str) -> None:
    expected = (GOLDEN / f"{name}.{lang}.md").read_text(encoding="utf-8")
    assert rendered(name, lang) == expected
