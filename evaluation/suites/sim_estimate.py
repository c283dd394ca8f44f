"""Extraction rate and volume of a caught theft, from the segment's flow balance (API RP 1130 accuracy).

The balance is the level-compensated imbalance of the segment (upstream flow minus downstream flow
minus the downstream tank's change of inventory, ``SimulationResult.segment_imbalance``) computed
from the *measured* readings, i.e. what the detector received. Over the incident the tank term
telescopes, so the integral is robust although the per-minute term is noisy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# The baseline is the balance's median over this span before the incident's first window,
# ending this long before it, so a tap opened shortly before the alarm does not leak into it.
BASELINE_MINUTES = 360
BASELINE_GAP_MINUTES = 60


@dataclass(frozen=True, slots=True)
class Estimate:
    rate_m3h: float
    volume_m3: float
    baseline_m3h: float
    minutes: int


def estimate_extraction(
    imbalance_m3h: npt.NDArray[np.float64], first_minute: int, last_minute: int
) -> Estimate | None:
    """Baseline-corrected mean rate and integrated volume over minutes ``[first, last)``."""
    first = max(0, first_minute)
    last = min(len(imbalance_m3h), last_minute)
    if last <= first:
        return None
    base_end = max(0, first - BASELINE_GAP_MINUTES)
    base_start = max(0, base_end - BASELINE_MINUTES)
    before = imbalance_m3h[base_start:base_end]
    before = before[np.isfinite(before)]
    baseline = float(np.median(before)) if before.size else 0.0
    during = imbalance_m3h[first:last]
    during = during[np.isfinite(during)]
    if not during.size:
        return None
    excess = during - baseline
    # Missing minutes count at the mean rate, so a dropout does not shrink the volume.
    rate = float(excess.mean())
    return Estimate(
        rate_m3h=rate, volume_m3=rate * (last - first) / 60.0, baseline_m3h=baseline, minutes=last - first
    )
