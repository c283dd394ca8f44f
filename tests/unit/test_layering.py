"""The direction of imports between our packages (house rules; ARCHITECTURE.md item 7).

Every import is read from the source (module level and inside functions alike: a lazy import is
still a dependency). ``detector`` is the core and imports nothing of ours; ``trainer`` and
``stream`` stand on it and never on each other; ``replay`` may use ``stream`` (its Kafka settings);
``centinela`` composes them all. ``bench`` reaches ``centinela`` only for the local broker.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = {"detector", "trainer", "stream", "replay", "centinela", "bench"}
ALLOWED = {
    "detector": set(),
    "trainer": {"detector"},
    "stream": {"detector"},
    "replay": {"detector", "stream"},
    "bench": {"detector", "trainer", "stream", "replay", "centinela"},
    "centinela": OURS - {"centinela"},
}
# The one arrow that runs back up, until the local broker moves below both (ARCHITECTURE.md item 4).
KNOWN_EXCEPTIONS = {("bench", "centinela.local_broker")}


def imports_of(path: Path) -> set[str]:
    """Dotted names of every ``import`` and ``from ... import`` in ``path`` (absolute ones)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_every_package_imports_only_what_it_stands_on() -> None:
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in sorted(imports_of(path)):
                top = name.split(".")[0]
                if top not in OURS or top == package or top in allowed:
                    continue
                if (package, name) in KNOWN_EXCEPTIONS or (package, top) in KNOWN_EXCEPTIONS:
                    continue
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_the_rule_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from stream.settings import Settings\n    import trainer.cli\n")
    assert imports_of(module) == {"stream.settings", "trainer.cli"}
