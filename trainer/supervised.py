"""``--use-labels``: learn the signature of confirmed anomalies from the training split's labels.

A detector that never sees a label can only measure distance from normal; confirmed anomalies here
have a direction (flow and pressure drop, power rises) that distance alone ignores. A plain logistic
model on each minute's signed reconstruction residuals learns that direction; a window
scores the most suspicious minute it holds. Only training-split labels are used: validation still
chooses the threshold and test is still untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


def minute_features(residuals: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """``(n, T, S)`` residuals as per-minute features: the signed residual of each sensor.

    Squared terms were tried and generalised worse (they let the model fit the noise of the
    anomalous training minutes); the sign is what carries the signature.
    """
    return residuals.astype(np.float64)


@dataclass
class LabelHead:
    model: Any

    def score(self, residuals: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Window score: the highest per-minute log-odds of being a confirmed anomaly."""
        features = minute_features(residuals)
        n, steps, width = features.shape
        logits = np.asarray(self.model.decision_function(features.reshape(n * steps, width)), np.float64)
        best: npt.NDArray[np.float64] = logits.reshape(n, steps).max(axis=1)
        return best

    def describe(self, sensors: tuple[str, ...]) -> dict[str, float]:
        names = [f"{s}_residual" for s in sensors]
        return {name: float(c) for name, c in zip(names, self.model.coef_[0], strict=True)}


def fit_label_head(
    residuals: npt.NDArray[np.float32], step_labels: npt.NDArray[np.int8], seed: int = 42
) -> LabelHead:
    """Fit on every minute of every training window (normal and anomalous)."""
    from sklearn.linear_model import LogisticRegression

    features = minute_features(residuals)
    n, steps, width = features.shape
    y = step_labels.reshape(n * steps).astype(int)
    model = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    model.fit(features.reshape(n * steps, width), y)
    return LabelHead(model)
