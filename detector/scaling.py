"""Per-station standardisation: the model sees each station's sensors in its own normal units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detector.errors import BundleError, DataError


def _as_vector(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    vector = np.asarray(values, dtype=np.float64)
    if vector.ndim != 1 or not np.isfinite(vector).all():
        raise BundleError(f"scaler {name} must be a finite 1-d vector, got shape {vector.shape}")
    return vector


@dataclass(frozen=True)
class Scaler:
    """``(x - mean) / scale`` per sensor; a zero scale (constant sensor) counts as 1, like scikit-learn."""

    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        mean = _as_vector(self.mean, "mean")
        scale = _as_vector(self.scale, "scale")
        if mean.shape != scale.shape:
            raise BundleError(f"scaler mean {mean.shape} and scale {scale.shape} differ in length")
        if (scale < 0).any():
            raise BundleError("scaler scale must not be negative")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "scale", np.where(scale == 0.0, 1.0, scale))

    @property
    def n_sensors(self) -> int:
        return len(self.mean)

    @classmethod
    def fit(cls, rows: npt.ArrayLike) -> Scaler:
        """Mean and population standard deviation per column (``ddof=0``, as ``StandardScaler``)."""
        X = np.asarray(rows, dtype=np.float64)
        return cls(mean=X.mean(axis=0), scale=X.std(axis=0))

    def transform(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Scale any array whose last axis is the sensors; float32 out, the model's dtype."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale).astype(np.float32)

    def inverse_transform(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.asarray(x, dtype=np.float64) * self.scale + self.mean

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "scale": [float(v) for v in self.scale]}

    @classmethod
    def from_dict(cls, fields: Mapping[str, Sequence[float]]) -> Scaler:
        return cls(mean=np.asarray(fields["mean"]), scale=np.asarray(fields["scale"]))


@dataclass(frozen=True)
class StationScalers:
    """A scaler per known station and a fallback for stations the training data never saw."""

    per_station: dict[str, Scaler]
    fallback: Scaler

    def __post_init__(self) -> None:
        for station, scaler in self.per_station.items():
            if scaler.n_sensors != self.fallback.n_sensors:
                raise BundleError(
                    f"scaler of station {station!r} has {scaler.n_sensors} sensors, "
                    f"fallback has {self.fallback.n_sensors}"
                )

    def for_station(self, station_id: str) -> Scaler:
        return self.per_station.get(station_id, self.fallback)

    def transform_windows(
        self, station_ids: Sequence[str], windows: npt.ArrayLike
    ) -> npt.NDArray[np.float32]:
        """Scale a batch of raw windows ``(n, T, S)``, each with its own station's scaler."""
        X = np.asarray(windows, dtype=np.float64)
        if X.ndim != 3 or len(station_ids) != len(X):
            raise DataError(f"windows must be (n, T, S) with n = {len(station_ids)} stations, got {X.shape}")
        mean = np.empty((len(X), X.shape[2]), dtype=np.float64)
        scale = np.empty_like(mean)
        for row, station in enumerate(station_ids):
            scaler = self.for_station(station)
            mean[row] = scaler.mean
            scale[row] = scaler.scale
        return ((X - mean[:, None, :]) / scale[:, None, :]).astype(np.float32)

    def to_dict(self) -> dict[str, object]:
        return {
            "per_station": {station: scaler.to_dict() for station, scaler in self.per_station.items()},
            "fallback": self.fallback.to_dict(),
        }

    @classmethod
    def from_dict(cls, fields: Mapping[str, object]) -> StationScalers:
        per_station = fields.get("per_station", {})
        fallback = fields.get("fallback")
        if not isinstance(per_station, Mapping) or not isinstance(fallback, Mapping):
            raise BundleError("scalers need 'per_station' (object) and 'fallback' (object)")
        return cls(
            per_station={str(k): Scaler.from_dict(v) for k, v in per_station.items()},
            fallback=Scaler.from_dict(fallback),
        )
