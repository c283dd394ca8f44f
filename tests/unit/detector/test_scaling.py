from __future__ import annotations

import numpy as np
import pytest

from detector.errors import BundleError, DataError
from detector.scaling import Scaler, StationScalers


def test_fit_transform_standardises_and_inverts() -> None:
    rows = np.random.default_rng(0).normal([10.0, -3.0], [2.0, 0.5], size=(500, 2))
    scaler = Scaler.fit(rows)
    scaled = scaler.transform(rows)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(scaler.inverse_transform(scaled), rows, rtol=1e-5)


def test_a_constant_sensor_is_not_divided_by_zero() -> None:
    scaler = Scaler.fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert list(scaler.scale) == [1.0, 1.0]
    assert np.isfinite(scaler.transform([[2.0, 5.0]])).all()


def test_bad_scalers_are_refused() -> None:
    with pytest.raises(BundleError):
        Scaler(np.zeros(2), np.ones(3))
    with pytest.raises(BundleError):
        Scaler(np.array([np.nan, 0.0]), np.ones(2))
    with pytest.raises(BundleError):
        Scaler(np.zeros(2), np.array([1.0, -1.0]))
    with pytest.raises(BundleError):
        StationScalers({"A": Scaler(np.zeros(3), np.ones(3))}, Scaler(np.zeros(2), np.ones(2)))


def test_each_window_uses_its_own_station_or_the_fallback() -> None:
    scalers = StationScalers(
        per_station={"A": Scaler(np.array([10.0]), np.array([2.0]))},
        fallback=Scaler(np.array([0.0]), np.array([1.0])),
    )
    windows = np.full((2, 3, 1), 12.0)
    scaled = scalers.transform_windows(["A", "unknown"], windows)
    assert scaled[0, 0, 0] == 1.0
    assert scaled[1, 0, 0] == 12.0
    assert scalers.for_station("unknown") is scalers.fallback
    with pytest.raises(DataError):
        scalers.transform_windows(["A"], windows)


def test_dict_round_trip() -> None:
    scalers = StationScalers(
        per_station={"A": Scaler(np.array([1.0, 2.0]), np.array([3.0, 4.0]))},
        fallback=Scaler(np.array([0.5, 0.5]), np.array([1.0, 2.0])),
    )
    again = StationScalers.from_dict(scalers.to_dict())
    assert again.to_dict() == scalers.to_dict()
