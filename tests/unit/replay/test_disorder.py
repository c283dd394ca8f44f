from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from detector.errors import ConfigError
from replay.disorder import Disorder, DisorderOptions

MINUTE = 60 * 10**9


def minutes(n: int, stations: int = 1) -> np.ndarray:
    return np.repeat(np.arange(n, dtype=np.int64) * MINUTE, stations)


def test_nothing_happens_without_options() -> None:
    ts = minutes(100)
    plan = Disorder(DisorderOptions()).apply(ts)
    assert plan.index.tolist() == list(range(100))
    assert plan.schedule_ns.tolist() == ts.tolist()
    assert (plan.dropped, plan.duplicated) == (0, 0)


def test_same_seed_same_disorder_other_seed_other() -> None:
    options = DisorderOptions(shuffle_within=timedelta(minutes=5), duplicate_rate=0.1, drop_rate=0.1, seed=3)
    ts = minutes(1000, stations=3)
    first = Disorder(options).apply(ts)
    second = Disorder(options).apply(ts)
    other = Disorder(
        DisorderOptions(shuffle_within=timedelta(minutes=5), duplicate_rate=0.1, drop_rate=0.1, seed=4)
    ).apply(ts)
    assert first.index.tolist() == second.index.tolist()
    assert first.index.tolist() != other.index.tolist()


def test_shuffle_never_delays_a_reading_past_the_span() -> None:
    span = timedelta(seconds=90)
    ts = minutes(5000, stations=4)
    plan = Disorder(DisorderOptions(shuffle_within=span, seed=1)).apply(ts)
    sent = ts[plan.index]
    assert sorted(plan.index.tolist()) == list(range(len(ts)))  # a permutation: nothing lost
    newest_before = np.maximum.accumulate(sent)
    lateness = newest_before - sent
    assert lateness.max() < span / timedelta(microseconds=1) * 1000
    assert (np.diff(sent) < 0).sum() > 100  # and it really reorders
    assert np.all(np.diff(plan.schedule_ns) >= 0)
    assert np.all(plan.schedule_ns >= sent)


def test_rates_are_about_right_and_counted() -> None:
    ts = minutes(100_000)
    plan = Disorder(DisorderOptions(duplicate_rate=0.05, drop_rate=0.2, seed=9)).apply(ts)
    assert 0.19 < plan.dropped / len(ts) < 0.21
    survivors = len(ts) - plan.dropped
    assert 0.045 < plan.duplicated / survivors < 0.055
    assert len(plan.index) == survivors + plan.duplicated
    counts = np.bincount(plan.index, minlength=len(ts))
    assert set(np.unique(counts).tolist()) == {0, 1, 2}
    assert (counts == 2).sum() == plan.duplicated
    assert np.all(np.diff(plan.index) >= 0)  # no shuffle asked: order kept


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ConfigError):
        DisorderOptions(drop_rate=1.5)
    with pytest.raises(ConfigError):
        DisorderOptions(shuffle_within=timedelta(seconds=-1))
