from __future__ import annotations

import numpy as np
import pytest

from detector.errors import ConfigError, DataError
from detector.scoring import AGGREGATIONS, Reconstructor, reconstruction_errors
from devtools.stand_ins import LinearReconstructor


def test_aggregations_on_a_hand_example() -> None:
    x = np.zeros((1, 4, 2))
    x_hat = np.zeros((1, 4, 2))
    x_hat[0, 1] = [2.0, 0.0]  # per-step error 2
    x_hat[0, 3] = [2.0, 2.0]  # per-step error 4
    mean, contributions = reconstruction_errors(x, x_hat, "mean")
    assert mean[0] == pytest.approx(6.0 / 4)
    assert reconstruction_errors(x, x_hat, "max")[0][0] == pytest.approx(4.0)
    assert reconstruction_errors(x, x_hat, "topk", topk=2)[0][0] == pytest.approx(3.0)
    assert reconstruction_errors(x, x_hat, "topk", topk=10)[0][0] == pytest.approx(mean[0])
    np.testing.assert_allclose(contributions[0], [8.0 / 12, 4.0 / 12])


def test_contributions_sum_to_one_and_are_uniform_for_a_perfect_fit() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 30, 5))
    x_hat = x + rng.normal(scale=0.1, size=x.shape)
    x_hat[0] = x[0]
    for aggregation in AGGREGATIONS:
        scores, contributions = reconstruction_errors(x, x_hat, aggregation)
        assert scores.shape == (20,) and (scores >= 0).all()
        np.testing.assert_allclose(contributions.sum(axis=1), 1.0)
        np.testing.assert_allclose(contributions[0], 0.2)


def test_wrong_inputs_are_refused() -> None:
    with pytest.raises(ConfigError):
        reconstruction_errors(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), "median")
    with pytest.raises(DataError):
        reconstruction_errors(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))
    with pytest.raises(ConfigError):
        reconstruction_errors(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), "topk", topk=0)


def test_the_numpy_stand_in_is_a_reconstructor() -> None:
    stand_in: Reconstructor = LinearReconstructor(0.25)
    x = np.random.default_rng(4).normal(size=(3, 30, 5))
    rebuilt = stand_in.reconstruct(x)
    assert rebuilt.dtype == np.float32
    np.testing.assert_allclose(rebuilt, 0.25 * x, rtol=1e-6)
    with pytest.raises(DataError):
        stand_in.reconstruct(np.zeros((30, 5)))
