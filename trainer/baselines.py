"""IsolationForest and LocalOutlierFactor on the same windows, flattened: the non-sequential yardsticks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

BASELINES = ("isolation_forest", "local_outlier_factor")


@dataclass
class Baseline:
    """A fitted scikit-learn detector; ``score`` is higher for more anomalous windows."""

    name: str
    estimator: Any

    def score(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        flat = x.reshape(len(x), -1)
        return -np.asarray(self.estimator.score_samples(flat), dtype=np.float64)


def fit_baseline(name: str, x_normal: npt.NDArray[np.float32], seed: int = 42) -> Baseline:
    """Fit on normal training windows only, as the autoencoder is; thresholds come from validation.

    The original fitted with a contamination guess and used the estimator's own cut, which on this
    data flagged nothing (F1 0.00); here both score continuously and are calibrated like the autoencoder.
    """
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    flat = x_normal.reshape(len(x_normal), -1)
    estimator: Any
    if name == "isolation_forest":
        estimator = IsolationForest(n_estimators=200, random_state=seed, n_jobs=1)
    elif name == "local_outlier_factor":
        estimator = LocalOutlierFactor(n_neighbors=20, novelty=True)
    else:
        raise ValueError(f"unknown baseline {name!r}")
    estimator.fit(flat)
    return Baseline(name, estimator)
