from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SENSORS = ("flow", "pressure", "pump_rpm", "tank_level", "power")


def synthetic_csv(
    path: Path,
    rows: int = 600,
    stations: tuple[str, ...] | None = None,
    seed: int = 0,
    anomaly_every: int = 97,
) -> Path:
    """Seed-like data: Gaussian sensors, single-minute anomalies (flow and pressure drop, power rises)."""
    rng = np.random.default_rng(seed)
    lines = [("station_id," if stations else "") + "timestamp," + ",".join(SENSORS) + ",label"]
    for station in stations or (None,):
        base = np.array([500.0, 70.0, 1800.0, 15.0, 400.0])
        scale = np.array([20.0, 5.0, 50.0, 2.0, 15.0])
        values = base + scale * rng.standard_normal((rows, len(SENSORS)))
        labels = np.zeros(rows, dtype=int)
        labels[anomaly_every // 2 :: anomaly_every] = 1
        values[labels == 1] += np.array([-90.0, -15.0, 0.0, 0.0, 45.0])
        for i in range(rows):
            ts = np.datetime64("2025-01-01T00:00") + np.timedelta64(i, "m")
            prefix = f"{station}," if station else ""
            cells = ",".join(f"{v:.4f}" for v in values[i])
            lines.append(f"{prefix}{str(ts).replace('T', ' ')}:00,{cells},{labels[i]}.0")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def seed_like_csv(tmp_path: Path) -> Path:
    return synthetic_csv(tmp_path / "seed.csv")
