from __future__ import annotations

import numpy as np
import pytest

from detector.errors import ConfigError, DataError
from trainer.calibration import (
    BEST_F1,
    BEST_F1_EVERY,
    STRATEGIES,
    best_f1_every_threshold,
    best_f1_percentile,
    calibrate,
    counts_at,
    iqr_threshold,
    mad_threshold,
)


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


def test_best_f1_every_threshold_takes_the_middle_of_the_best_gap() -> None:
    # Normal up to 3, anomalies from 7: every cut in [3, 7) is perfect, the middle is 5.
    scores = np.array([1.0, 2.0, 3.0, 7.0, 8.0])
    labels = np.array([0, 0, 0, 1, 1])
    chosen = best_f1_every_threshold(scores, labels)
    assert chosen.strategy == BEST_F1_EVERY and chosen.percentile is None
    assert chosen.threshold == pytest.approx(5.0)
    assert chosen.counts.f1 == 1.0


def test_best_f1_every_threshold_counts_false_alarms_on_extra_normal_windows() -> None:
    scores = np.array([1.0, 2.0, 3.0, 4.0, 6.0, 9.0])
    labels = np.array([0, 0, 0, 1, 1, 1])
    alone = best_f1_every_threshold(scores, labels)
    assert alone.threshold == pytest.approx(3.5)  # between the largest normal and the first anomaly
    # Four unseen normal windows between 5 and 5.7: at 3.5 they would alarm (4 of 7 normal windows, so
    # 1.7 false alarms at validation's 3 normal windows, F1 0.78); giving up the anomaly at 4 is better.
    unseen = [5.0, 5.2, 5.5, 5.7]
    pooled = best_f1_every_threshold(scores, labels, extra_normal=unseen)
    assert pooled.threshold == pytest.approx((5.7 + 6.0) / 2)
    # The reported counts are plain validation counts at the chosen threshold.
    assert (pooled.counts.tp, pooled.counts.fp, pooled.counts.fn) == (2, 0, 1)
    record = calibrate(scores, labels, method=BEST_F1_EVERY, extra_normal=unseen)
    assert record.threshold == pooled.threshold
    assert record.to_dict()["extra_normal_windows"] == 4
    assert calibrate(scores, labels).to_dict()["extra_normal_windows"] == 0


def test_best_f1_every_threshold_without_anomalies_sits_on_the_largest_normal_score() -> None:
    chosen = best_f1_every_threshold([1.0, 2.0, 3.0], [0, 0, 0], extra_normal=[4.0])
    assert chosen.threshold == 4.0
    with pytest.raises(DataError):
        best_f1_every_threshold([1.0, 2.0], [0, 1], extra_normal=[np.inf])
