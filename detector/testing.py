"""The fixed values test and benchmark bundles share (the seed data set's scale, a fixed creation
time, the sensors a line reads), so the trainer's and the developer tools' stand-ins agree.

The stand-in bundles themselves are developer tooling, not core: ``devtools.stand_ins``
(``build_linear_bundle``) and ``trainer.testing.build_keras_bundle``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from detector.readings import DEFAULT_SENSORS
from detector.scaling import Scaler, StationScalers

# Mean and spread of the seed data set's sensors (rounded), so test bundles scale realistic readings.
SEED_MEAN = (499.2, 69.8, 1800.5, 15.0, 400.1)
SEED_SCALE = (20.0, 4.0, 30.0, 2.0, 10.0)
FIXED_CREATED_AT = datetime(2025, 1, 1, tzinfo=UTC)
# The seed sensors plus the suction pressure a segment balance reads (detector.topology.ROLES).
LINE_SENSORS: tuple[str, ...] = (*DEFAULT_SENSORS, "suction_pressure")


def default_scalers(n_sensors: int, stations: Sequence[str] = ()) -> StationScalers:
    if n_sensors == len(SEED_MEAN):
        scaler = Scaler(np.asarray(SEED_MEAN), np.asarray(SEED_SCALE))
    else:
        scaler = Scaler(np.zeros(n_sensors), np.ones(n_sensors))
    return StationScalers(per_station=dict.fromkeys(stations, scaler), fallback=scaler)
