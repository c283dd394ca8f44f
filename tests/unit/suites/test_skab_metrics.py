from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluation.suites.skab_data import load_benchmark, load_published_predictions
from evaluation.suites.skab_leaderboard import PRINTED, recompute_published, widen
from evaluation.suites.skab_metrics import (
    Confusion,
    NabTally,
    confusion,
    file_events,
    predicted_changepoints,
    segments_of,
)


@pytest.fixture(scope="module")
def recomputed(skab_root: Path) -> dict[str, dict[str, object]]:
    files = load_benchmark(skab_root)
    scored = recompute_published(files, load_published_predictions(skab_root))
    return {name: result.as_dict() for name, result in scored.items()}


def test_conv_ae_row_is_reproduced_from_the_published_predictions(
    recomputed: dict[str, dict[str, object]],
) -> None:
    row = recomputed["Conv-AE"]
    assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (9193, 1495, 3578, 9535)
    assert round(float(row["f1"]), 2) == 0.78  # type: ignore[arg-type]
    assert row["far"] == 13.55
    assert row["mar"] == 28.02
    nab = row["nab"]
    assert isinstance(nab, dict)
    assert (nab["standard"], nab["low_fp"], nab["low_fn"]) == (23.61, 21.54, 27.55)
    assert (nab["missed"], nab["false_positives"], nab["changepoints"]) == (82, 23, 127)


@pytest.mark.parametrize(
    "algorithm",
    [
        "MSET",
        "T-squared+Q (PCA-based)",
        "LSTM-AE",
        "Vanilla LSTM",
        "Vanilla AE",
        "Isolation forest",
        "ArimaFD",
    ],
)
def test_other_published_rows_match_their_printed_numbers(
    recomputed: dict[str, dict[str, object]], algorithm: str
) -> None:
    row, printed = recomputed[algorithm], PRINTED[algorithm]
    assert (round(float(row["f1"]), 2), row["far"], row["mar"]) == (printed.f1, printed.far, printed.mar)  # type: ignore[arg-type]
    nab = row["nab"]
    assert isinstance(nab, dict)
    assert (nab["standard"], nab["low_fp"], nab["low_fn"]) == printed.nab
    assert (nab["missed"], nab["false_positives"]) == (printed.missed, printed.false_positives)


def test_rates_are_micro_averaged_over_summed_counts() -> None:
    summed = confusion([1, 1, 0, 0], [1, 0, 1, 0]) + confusion([1, 0], [1, 0])
    assert summed == Confusion(tp=2, fp=1, fn=1, tn=2)
    assert summed.f1 == pytest.approx(2 / (2 + 1))
    assert summed.far == pytest.approx(100 / 3)
    assert summed.mar == pytest.approx(100 / 3)


def test_changepoints_are_both_edges_of_each_alarm_run() -> None:
    assert predicted_changepoints(np.array([1, 1, 0, 0, 1, 1, 1, 0])).tolist() == [1, 0, 1, 0, 1, 0, 0, 1]
    assert widen(np.array([0, 1, 0, 0, 0], dtype=np.int8), 3).tolist() == [0, 1, 1, 1, 0]


def test_events_count_caught_segments_delays_and_false_runs() -> None:
    stamps = np.arange(10).astype("datetime64[s]")
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0, 0])
    alarms = np.array([0, 1, 0, 0, 0, 1, 1, 1, 0, 1])
    events = file_events("f", stamps, labels, alarms)
    assert segments_of(labels) == [(3, 7)]
    assert events.segments[0].caught
    assert events.segments[0].delay_s == 2.0
    assert events.segments[0].raised_inside
    assert events.false_alarm_runs == 2  # the run at row 1 and the one at row 9, not the one inside


def test_a_false_alarm_running_into_a_segment_is_not_an_alarm_raised_inside_it() -> None:
    stamps = np.arange(8).astype("datetime64[s]")
    labels = np.array([0, 0, 0, 1, 1, 1, 0, 0])
    alarms = np.array([0, 1, 1, 1, 1, 1, 0, 0])
    outcome = file_events("f", stamps, labels, alarms).segments[0]
    assert outcome.caught
    assert outcome.delay_s == 0.0
    assert not outcome.raised_inside


def test_nab_scores_perfect_silent_and_late_detectors() -> None:
    stamps = np.arange(200).astype("datetime64[s]")
    truth = np.zeros(200, dtype=np.int8)
    truth[50] = 1
    perfect, late, silent = NabTally(), NabTally(), NabTally()
    perfect.add_file(stamps, truth, truth)
    alarm_late = np.zeros(200, dtype=np.int8)
    alarm_late[115] = 1  # 65 s after the changepoint: past the 60 s window
    late.add_file(stamps, truth, alarm_late)
    silent.add_file(stamps, truth, np.zeros(200, dtype=np.int8))
    assert perfect.result()["standard"] == 100.0
    assert silent.result()["standard"] == 0.0
    assert late.result()["missed"] == 1
    assert late.result()["false_positives"] == 1
