"""``centinela bench simulate``: seconds to simulate a line and write its readings.csv.

The figure is wall time for ``simulate(config)`` plus ``write_outputs`` (readings.csv, events.csv,
scenario.json, topology.toml) into a temporary folder: 100 stations x 30 days at one-minute
sampling (4.3 M rows); ``--quick`` runs 10 stations x 7 days. The same-run baseline writes the
same readings with ``DataFrame.to_csv(float_format=...)``, the usual way, to show what the numpy
writer buys.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

from bench.record import BenchResult, median_of
from simulator import SimulationConfig, simulate
from simulator.writer import write_outputs

TARGET_SECONDS = 60.0


def _generate_and_write(config: SimulationConfig, timings: dict[str, list[float]]) -> float:
    with tempfile.TemporaryDirectory(prefix="centinela-bench-sim-") as folder:
        began = time.perf_counter()
        result = simulate(config)
        simulated = time.perf_counter()
        written = write_outputs(result, Path(folder))
        finished = time.perf_counter()
    timings["simulate"].append(simulated - began)
    timings["write"].append(finished - simulated)
    timings["rows"].append(float(written.rows))
    return finished - began


def _pandas_write(config: SimulationConfig) -> float:
    result = simulate(config)
    frame = result.frame
    with tempfile.TemporaryDirectory(prefix="centinela-bench-sim-") as folder:
        began = time.perf_counter()
        frame.to_csv(
            Path(folder) / "readings.csv", index=False, float_format="%.3f", date_format="%Y-%m-%dT%H:%M:%SZ"
        )
        return time.perf_counter() - began


def run(quick: bool) -> BenchResult:
    stations, days = (10, 7) if quick else (100, 30)
    config = SimulationConfig(stations=stations, days=days, seed=7)
    timings: dict[str, list[float]] = {"simulate": [], "write": [], "rows": []}
    seconds = median_of(3, lambda: _generate_and_write(config, timings))
    pandas_seconds = median_of(3, lambda: _pandas_write(config))
    write_seconds = sorted(timings["write"])[len(timings["write"]) // 2]
    key = f"seconds_{stations}_stations_{days}_days"
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return BenchResult(
        name="simulate",
        figures={
            key: seconds,
            "simulate_seconds": sorted(timings["simulate"])[len(timings["simulate"]) // 2],
            "write_seconds": write_seconds,
            "rows": timings["rows"][0],
            "rows_per_s": timings["rows"][0] / seconds,
            "peak_rss_mb": peak_rss_mb,
        },
        baseline={"pandas_to_csv_seconds": pandas_seconds},
        ratio={"pandas_to_csv_vs_numpy_writer": pandas_seconds / write_seconds},
        targets={key: f"< {TARGET_SECONDS:.0f}"} if not quick else {},
        notes=(
            f"{stations} stations x {days} days, seed 7, default events and noise; wall time of "
            "simulate() plus write_outputs() into a temporary folder, median of 3. Baseline: the same "
            "readings frame written by pandas DataFrame.to_csv(float_format='%.3f'), median of 3."
        ),
    )
