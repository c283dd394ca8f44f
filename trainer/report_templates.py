"""The prose of the reports, one template file per report and language, read as named sections.

A report's words live in ``templates/<report>.<lang>.md`` inside the package that renders it
(``trainer`` for the training report, ``evaluation.suites`` for the suites), shipped as package data,
so a translator edits text, not code, and the renderer keeps only the numbers and the tables. A file
is a list of sections; each starts with a marker line ``<!-- name -->`` and runs to the next marker,
without the blank lines around it. Text before the first marker is a note to the reader and is not
read. Fields are ``str.format`` fields (``{threshold:.4f}``; ``{{`` for a literal brace) filled by the
renderer; every language of a report has the same sections with the same fields (the unit tests check
it).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType

from detector.errors import ConfigError

TEMPLATES_FOLDER = "templates"
_MARKER = re.compile(r"^<!-- ([a-z][a-z0-9_]*) -->$")


def parse_sections(text: str, source: str) -> dict[str, str]:
    """The sections of a template file in file order; ``source`` names the file in errors."""
    sections: dict[str, str] = {}
    name: str | None = None
    body: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        marker = _MARKER.match(line)
        if marker is None:
            body.append(line)
            continue
        if name is not None:
            sections[name] = "\n".join(body).strip("\n")
        name, body = marker.group(1), []
        if name in sections:
            raise ConfigError(f"{source}, line {number}: section {name!r} appears twice")
    if name is not None:
        sections[name] = "\n".join(body).strip("\n")
    return sections


@cache
def load_sections(package: str, report: str, lang: str) -> Mapping[str, str]:
    """The sections of ``templates/<report>.<lang>.md`` in ``package``, read once per process.

    Raises ConfigError when the report has no template in ``lang`` or the file holds no section.
    """
    source = f"{package}/{TEMPLATES_FOLDER}/{report}.{lang}.md"
    try:
        text = resources.files(package).joinpath(TEMPLATES_FOLDER, f"{report}.{lang}.md").read_text("utf-8")
    except FileNotFoundError as error:
        raise ConfigError(f"the {report} report has no {lang!r} template ({source} is missing)") from error
    sections = parse_sections(text, source)
    if not sections:
        raise ConfigError(f"{source} holds no section (a section starts with a line `<!-- name -->`)")
    return MappingProxyType(sections)


def format_fields(template: str) -> set[str]:
    """The names of the ``str.format`` fields of ``template`` (``{rate:.2%}`` gives ``rate``)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}
