"""MODEL_CARD.md in both languages, from a hand-made report (no training)."""

from __future__ import annotations

from typing import Any

import pytest

from trainer.reports import model_card


def report(*, acceptable: bool = True, checked: bool = True) -> dict[str, Any]:
    """The fields ``model_card`` reads, with an operating-point check and a one-segment line."""
    return {
        "data": "history.csv",
        "stations": ["EST-01", "EST-02"],
        "sensors": ["flow", "pressure"],
        "split": {"train": {"rows": 700}, "validation": {"rows": 150}, "test": {"rows": 150}},
        "split_bounds": {"validation_start": "2026-01-08", "test_start": "2026-01-10"},
        "window": {"samples": 30, "length": 1800, "step": 300},
        "models": {
            "autoencoder": {
                "threshold": 1.25,
                "mode": "unsupervised",
                "precision": 0.5,
                "recall": 0.75,
                "f1": 0.6,
                "roc_auc": 0.9,
                "average_precision": 0.7,
            }
        },
        "calibration": {
            "method": "false_alarm_budget",
            "aggregation": "mean",
            "validation": {"f1": 0.55},
            "validation_windows": 120,
            "validation_normal_windows": 110,
        },
        "operating_point": {
            "checked": checked,
            "acceptable": acceptable,
            "alarming_windows": 3,
            "normal_windows": 200,
            "share": 0.015,
            "max_share": 0.02,
            "alarms": 1,
        },
        "line": {
            "topology": "topo.toml",
            "lines": ["L1"],
            "budget_per_segment_month": 0.5,
            "calibrated_on": {
                "stations": ["EST-01", "EST-02"],
                "start": "2026-01-01",
                "end": "2026-01-10",
                "rows": 850,
                "excluded_labelled_rows": 12,
            },
            "segments": {"EST-01>EST-02": {"length_km": 40.0, "calibration": {"limit": 7.0}}},
        },
    }


def test_the_english_card_keeps_its_operating_point_and_line_sections() -> None:
    card = model_card(report())
    assert (
        "- Operating point accepted: 3 of 200 normal test windows (1.5 %, allowed 2 %) at or above the "
        "threshold, 1 alarm(s)." in card
    )
    assert "## Line (segment tap detection)" in card
    assert "segments EST-01>EST-02 (40 km, limit 7.000)." in card
    assert "(2026-01-01 to 2026-01-10, 850 rows, 12 labelled rows left out) to 0.5 false alarm(s)" in card
    assert "  meters or pipe (length, diameter)" in card  # the list item's continuation stays indented
    assert "Operating point **REJECTED**" in model_card(report(acceptable=False))
    assert "Operating point not checked" in model_card(report(checked=False))


# Phrases of the English operating-point and line sections; none may survive in the Spanish card.
ENGLISH = (
    "Operating point",
    "REJECTED",
    "normal test windows",
    "alarm(s)",
    "## Line",
    "Topology",
    "segments",
    "limit ",
    "false alarm(s) per segment-month",
    "labelled rows left out",
    "Recalibrate the segments",
    "needs a new topology file",
    "not checked",
)


@pytest.mark.parametrize(("acceptable", "checked"), [(True, True), (False, True), (True, False)])
def test_the_spanish_card_has_no_english_line(acceptable: bool, checked: bool) -> None:
    card = model_card(report(acceptable=acceptable, checked=checked), "es")
    left = [phrase for phrase in ENGLISH if phrase in card]
    assert not left, f"English in the Spanish model card: {left}"
    assert "## Línea (detección de tomas por tramo)" in card
    assert "tramos EST-01>EST-02 (40 km, límite 7.000)." in card
    assert "0.5 falsa(s) alarma(s) por tramo y mes" in card
    if not checked:
        assert "Punto de operación sin comprobar" in card
    elif acceptable:
        assert (
            "- Punto de operación aceptado: 3 de 200 ventanas normales de prueba (1.5 %, permitido 2 %)"
            in card
        )
    else:
        assert "Punto de operación **RECHAZADO**" in card
