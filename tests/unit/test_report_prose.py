"""Each report renderer, on a fixed report, writes exactly the committed markdown, in both languages;
the per-language templates of a report agree on their sections and fields.

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

from detector.errors import ConfigError
from evaluation.suites import calibration_report, sim_report, skab_report
from trainer import reports
from trainer.report_templates import format_fields, load_sections, parse_sections

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "report_golden"

Renderer = Callable[[dict[str, Any], Sequence[str], str], str]
RENDERERS: dict[str, Renderer] = {
    "calibration": lambda report, plots, lang: calibration_report.render_markdown(report, lang, plots),
    "sim": lambda report, plots, lang: sim_report.render_markdown(report, list(plots), lang),
    "skab": skab_report.render_markdown,
    "training": lambda report, plots, lang: reports.render_markdown(report, lang, list(plots)),
    "model_card": lambda report, plots, lang: reports.model_card(report, lang),
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


TEMPLATE_FOLDERS = [ROOT / "evaluation" / "suites" / "templates", ROOT / "trainer" / "templates"]


def template_pairs() -> list[tuple[Path, Path]]:
    """Each English template with its Spanish one."""
    return [
        (english, english.with_name(english.name.replace(".en.md", ".es.md")))
        for folder in TEMPLATE_FOLDERS
        for english in sorted(folder.glob("*.en.md"))
    ]


def test_there_are_templates() -> None:
    assert len(template_pairs()) >= 2


@pytest.mark.parametrize(("english", "spanish"), template_pairs(), ids=lambda path: path.name)
def test_both_languages_have_the_same_sections_and_fields(english: Path, spanish: Path) -> None:
    en = parse_sections(english.read_text(encoding="utf-8"), english.name)
    es = parse_sections(spanish.read_text(encoding="utf-8"), spanish.name)
    assert list(en) == list(es)
    for name in en:
        assert format_fields(en[name]) == format_fields(es[name]), name


def test_a_template_is_read_as_its_sections() -> None:
    text = "a note\n<!-- title -->\n# Report\n\n<!-- body -->\nline one\n  line two {n:.2f}\n\n"
    sections = parse_sections(text, "t.en.md")
    assert sections == {"title": "# Report", "body": "line one\n  line two {n:.2f}"}
    assert format_fields(sections["body"]) == {"n"}


def test_a_section_twice_is_refused_with_its_line() -> None:
    with pytest.raises(ConfigError, match=r"t\.en\.md, line 3: section 'a' appears twice"):
        parse_sections("<!-- a -->\nx\n<!-- a -->\ny", "t.en.md")


def test_a_language_without_templates_is_refused() -> None:
    with pytest.raises(ConfigError, match="no 'fr' template"):
        load_sections("evaluation.suites", "calibration", "fr")
