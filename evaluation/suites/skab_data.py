"""The Skoltech Anomaly Benchmark (SKAB v0.9) on disk: labelled files and published predictions.

The data is GPL-3.0 (Katser & Kozitsin, "Skoltech Anomaly Benchmark (SKAB)", Kaggle 2020,
DOI 10.34740/KAGGLE/DSV/1693952; https://github.com/waico/SKAB). It is read in place, never copied
into this repository.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detector.errors import DataError

SENSORS: tuple[str, ...] = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)

# The protocol of the current leaderboard: each file on its own, the first 400 rows train.
TRAIN_ROWS = 400

# The 34 labelled files of the leaderboard, in the order SKAB's notebooks list them.
LABELLED_FILES: tuple[str, ...] = (
    *(f"valve1/{i}.csv" for i in range(16)),
    *(f"valve2/{i}.csv" for i in range(4)),
    *(f"other/{i}.csv" for i in range(1, 15)),
)
ANOMALY_FREE_FILE = "anomaly-free/anomaly-free.csv"
PUBLISHED_PREDICTIONS_FILE = "published_predictions_test.csv"

# The published algorithms' columns in the predictions file, in the leaderboard's order.
PUBLISHED_ALGORITHMS: tuple[str, ...] = (
    "Conv-AE",
    "MSET",
    "T-squared+Q (PCA-based)",
    "LSTM-AE",
    "T-squared",
    "Vanilla LSTM",
    "MSCRED",
    "Vanilla AE",
    "Isolation forest",
    "ArimaFD",
)

_DEFAULT_RELATIVE = Path("..") / "shared" / "datasets" / "skab"


def default_skab_dir() -> Path:
    """Where the data lives: ``$CENTINELA_SKAB_DIR``, else ``../shared/datasets/skab`` beside the repo."""
    configured = os.environ.get("CENTINELA_SKAB_DIR")
    if configured:
        return Path(configured)
    repo_root = Path(__file__).resolve().parents[2]
    return (repo_root / _DEFAULT_RELATIVE).resolve()


@dataclass(frozen=True)
class SkabFile:
    """One experiment: readings, labels and timestamps (local time of the testbed, no zone)."""

    name: str
    timestamps: npt.NDArray[np.datetime64]
    values: npt.NDArray[np.float64]  # (rows, len(SENSORS))
    anomaly: npt.NDArray[np.int8]
    changepoint: npt.NDArray[np.int8]

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])


def load_file(root: Path, name: str) -> SkabFile:
    """Read one SKAB CSV (``;``-separated, header row); the anomaly-free file has no label columns."""
    path = root / name
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, delimiter=";")
            header = next(reader)
            rows = list(reader)
    except (OSError, StopIteration) as error:
        raise DataError(f"cannot read SKAB file {path}: {error}") from error
    try:
        sensor_columns = [header.index(sensor) for sensor in SENSORS]
        time_column = header.index("datetime")
    except ValueError as error:
        raise DataError(f"{path}: missing column ({error}); header is {header}") from error
    labelled = "anomaly" in header
    try:
        values = np.array([[float(row[i]) for i in sensor_columns] for row in rows], dtype=np.float64)
        timestamps = np.array([row[time_column].replace(" ", "T") for row in rows], dtype="datetime64[s]")
        if labelled:
            anomaly = np.array([float(row[header.index("anomaly")]) for row in rows]).astype(np.int8)
            changepoint = np.array([float(row[header.index("changepoint")]) for row in rows]).astype(np.int8)
        else:
            anomaly = np.zeros(len(rows), dtype=np.int8)
            changepoint = np.zeros(len(rows), dtype=np.int8)
    except (ValueError, IndexError) as error:
        raise DataError(f"{path}: malformed row ({error})") from error
    return SkabFile(name, timestamps, values.reshape(len(rows), len(SENSORS)), anomaly, changepoint)


def load_benchmark(root: Path, names: Sequence[str] = LABELLED_FILES) -> list[SkabFile]:
    """Load the labelled files; a clear error if the data set is not where it should be."""
    if not (root / "valve1").is_dir():
        raise DataError(
            f"SKAB data not found under {root}; set CENTINELA_SKAB_DIR to the folder holding valve1/, "
            "valve2/, other/ and anomaly-free/"
        )
    return [load_file(root, name) for name in names]


@dataclass(frozen=True)
class PublishedRows:
    """One algorithm's published predictions for the test part of one file (scored rows only)."""

    row_index: npt.NDArray[np.int64]
    prediction: npt.NDArray[np.int8]


def load_published_predictions(root: Path) -> dict[str, dict[str, PublishedRows]]:
    """``{algorithm: {file: rows}}`` from SKAB's published per-row predictions.

    Rows an algorithm did not score (MSCRED's and Vanilla LSTM's first test rows) are left out, as the
    leaderboard's own scoring left them out.
    """
    path = root / PUBLISHED_PREDICTIONS_FILE
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            records = list(reader)
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from error
    collected: dict[str, dict[str, tuple[list[int], list[int]]]] = {name: {} for name in PUBLISHED_ALGORITHMS}
    try:
        for record in records:
            for algorithm in PUBLISHED_ALGORITHMS:
                cell = record[algorithm]
                if cell == "":
                    continue
                rows, predictions = collected[algorithm].setdefault(record["file"], ([], []))
                rows.append(int(record["row_idx"]))
                predictions.append(int(float(cell)))
    except (KeyError, ValueError) as error:
        raise DataError(f"{path}: unexpected content ({error})") from error
    return {
        algorithm: {
            name: PublishedRows(np.array(rows, dtype=np.int64), np.array(predictions, dtype=np.int8))
            for name, (rows, predictions) in per_file.items()
        }
        for algorithm, per_file in collected.items()
    }
