"""The direction of imports between our packages (house rules; ARCHITECTURE.md item 7).

Every import is read from the source with ``ast`` (module level and inside functions alike: a lazy
import is still a dependency); nothing is imported. ``detector`` is the core and imports nothing of
ours; ``trainer`` and ``stream`` stand on it and never on each other; ``replay`` (CSV to Kafka) and
the ``simulator`` stand below the tools that use them; ``devtools`` (local broker, TLS, dashboards,
results, progress) serves ``bench`` and ``evaluation``, which nothing imports but ``centinela``, the
composition root (and for ``bench``, not even that: its CLI is registered by name).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Every top-level package of ours, including those another change is adding (an absent one is empty).
OURS = {
    "detector",
    "kafkakit",
    "trainer",
    "stream",
    "replay",
    "simulator",
    "devtools",
    "bench",
    "evaluation",
    "centinela",
}
BELOW_THE_TOOLS = {"detector", "kafkakit", "trainer", "stream", "replay", "simulator", "devtools"}
ALLOWED = {
    "detector": set(),
    "kafkakit": {"detector"},
    "simulator": {"detector"},
    "trainer": {"detector"},
    "stream": {"detector", "kafkakit"},
    "replay": {"detector", "kafkakit"},
    "devtools": {"detector", "kafkakit"},
    "bench": BELOW_THE_TOOLS,
    "evaluation": BELOW_THE_TOOLS,
    "centinela": OURS - {"centinela"},
}


def imports_of(path: Path) -> set[str]:
    """Dotted names of every ``import`` and ``from ... import`` in ``path`` (absolute ones)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def arrows(package: str) -> set[tuple[str, str]]:
    """``(file, imported name)`` for each import in ``package`` of another package of ours."""
    found = set()
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in imports_of(path):
            top = name.split(".")[0]
            if top in OURS and top != package:
                found.add((str(path.relative_to(ROOT)), name))
    return found


def imported_packages(package: str) -> set[str]:
    return {name.split(".")[0] for _, name in arrows(package)}


def test_every_top_level_package_is_known() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages <= OURS, f"add {sorted(packages - OURS)} to OURS and ALLOWED"


def test_the_core_imports_nothing_of_ours() -> None:
    assert arrows("detector") == set()


def test_stream_and_trainer_do_not_import_each_other() -> None:
    assert "trainer" not in imported_packages("stream")
    assert "stream" not in imported_packages("trainer")


def test_nothing_imports_bench() -> None:
    wrong = [f"{f} imports {n}" for p in OURS - {"bench"} for f, n in arrows(p) if n.split(".")[0] == "bench"]
    assert not wrong, "\n".join(wrong)


def test_only_the_composition_root_imports_evaluation() -> None:
    wrong = [
        f"{f} imports {n}"
        for p in OURS - {"evaluation", "centinela"}
        for f, n in arrows(p)
        if n.split(".")[0] == "evaluation"
    ]
    assert not wrong, "\n".join(wrong)


def test_replay_does_not_import_stream() -> None:
    assert "stream" not in imported_packages("replay")


def test_every_package_imports_only_what_it_stands_on() -> None:
    wrong = []
    for package, allowed in ALLOWED.items():
        for path, name in sorted(arrows(package)):
            top = name.split(".")[0]
            if top not in allowed:
                wrong.append(f"{path} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_no_cycle_between_packages() -> None:
    graph = {package: imported_packages(package) for package in OURS}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(package: str) -> None:
        if package in visiting:
            cycle = [*visiting[visiting.index(package) :], package]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if package in done:
            return
        visiting.append(package)
        for imported in sorted(graph[package]):
            visit(imported)
        visiting.pop()
        done.add(package)

    for package in sorted(graph):
        visit(package)


def test_the_rule_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from stream.settings import Settings\n    import trainer.cli\n")
    assert imports_of(module) == {"stream.settings", "trainer.cli"}
