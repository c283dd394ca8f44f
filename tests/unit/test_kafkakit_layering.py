"""The Kafka kit stands below ``stream`` and ``replay`` (ARCHITECTURE.md item 4): it imports
nothing of ours but the error hierarchy, and replay, with settings of its own, no longer reaches
into the detector's service package."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_layering import imports_of

ROOT = Path(__file__).resolve().parents[2]
OURS = {"detector", "trainer", "stream", "replay", "centinela", "bench", "kafkakit"}
OURS |= {"evaluation", "devtools", "simulator"}  # the packages issue 21 adds


def _ours_imported_by(package: str) -> dict[str, set[str]]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = {name for name in imports_of(path) if name.split(".")[0] in OURS - {package}}
        if names:
            found[str(path.relative_to(ROOT))] = names
    return found


def test_the_kafka_kit_imports_only_the_error_hierarchy() -> None:
    wrong = {
        path: names - {"detector.errors"}
        for path, names in _ours_imported_by("kafkakit").items()
        if names - {"detector.errors"}
    }
    assert not wrong, wrong


def test_the_kit_is_imported_where_kafka_is_used() -> None:
    # The rule above would pass on an empty package: the kit must really be what stream and replay use.
    for package in ("stream", "replay"):
        imported = {name for names in _ours_imported_by(package).values() for name in names}
        assert any(name.startswith("kafkakit.") for name in imported), package
