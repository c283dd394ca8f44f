from __future__ import annotations

import numpy as np
import pytest

from detector.calibration import (
    BEST_F1,
    STRATEGIES,
    best_f1_percentile,
    calibrate,
    counts_at,
    iqr_threshold,
    mad_threshold,
)
from detector.errors import ConfigError, DataError


def test_counts_and_scores() -> None:
    counts = counts_at([0.1, 0.9, 0.8, 0.2], [0, 1, 0, 1], threshold=0.5)
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (1, 1, 1, 1)
    assert counts.precision == counts.recall == counts.f1 == 0.5


def test_iqr_and_mad_rules() -> None:
    normal = np.arange(1.0, 101.0)
    q1, q3 = np.percentile(normal, [25, 75])
    assert iqr_threshold(normal) == pytest.approx(q3 + 1.5 * (q3 - q1))
    assert mad_threshold(normal) == pytest.approx(50.5 + 3 * 1.4826 * 25.0)


def test_best_f1_percentile_separates_clean_data_and_takes_the_middle_of_a_plateau() -> None:
    rng = np.random.default_rng(0)
    normal = rng.uniform(0.0, 1.0, 500)
    anomalous = rng.uniform(5.0, 6.0, 20)
    scores = np.concatenate([normal, anomalous])
    labels = np.r_[np.zeros(500), np.ones(20)]
    chosen = best_f1_percentile(scores, labels)
    # Lower percentiles let more normal windows through, so F1 rises with the percentile here.
    assert chosen.percentile == 99.0
    assert chosen.counts.recall == 1.0
    # Every percentile from 80 to 99 gives the same threshold and a perfect F1: one plateau.
    plateau_scores = np.concatenate([np.zeros(400), np.ones(100), np.full(20, 9.0)])
    plateau = best_f1_percentile(plateau_scores, labels)
    assert plateau.counts.f1 == 1.0
    assert plateau.percentile == 90.0  # the middle of the tied run 80..99


def test_calibrate_records_every_strategy_and_applies_to_test() -> None:
    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.normal(1.0, 0.2, 300), rng.normal(3.0, 0.3, 30)])
    labels = np.r_[np.zeros(300), np.ones(30)]
    record = calibrate(scores, labels)
    assert record.method == BEST_F1
    assert [c.strategy for c in record.strategies] == list(STRATEGIES)
    assert record.validation.f1 > 0.9
    as_dict = record.to_dict()
    assert as_dict["split"] == "validation" and len(as_dict["strategies"]) == len(STRATEGIES)
    on_test = record.evaluate(scores[::-1], labels[::-1])
    assert [c.threshold for c in on_test] == [c.threshold for c in record.strategies]
    assert record.threshold_of("iqr") == record.strategies[-2].threshold
    assert calibrate(scores, labels, method="mad").threshold == record.threshold_of("mad")


def test_refusals() -> None:
    with pytest.raises(ConfigError):
        calibrate([1.0, 2.0], [0, 1], method="magic")
    with pytest.raises(DataError):
        calibrate([1.0, 2.0], [1, 1])
    with pytest.raises(DataError):
        counts_at([1.0, np.nan], [0, 1], 0.5)
