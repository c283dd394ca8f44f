from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.errors import DataError
from tests.unit.trainer.conftest import SENSORS, synthetic_csv
from trainer.data import DEFAULT_STATION, load_csv


def test_single_station_file_is_est01_with_utc_times_and_sensors_from_the_header(seed_like_csv: Path) -> None:
    data = load_csv(seed_like_csv)
    assert list(data.stations) == [DEFAULT_STATION]
    assert data.sensors == SENSORS
    series = data.stations[DEFAULT_STATION]
    assert series.ts[0] == np.datetime64("2025-01-01T00:00:00")
    assert series.lines[0] == 2
    assert data.n_anomalous == int(series.labels.sum()) > 0


def test_multi_station_and_sensor_choice(tmp_path: Path) -> None:
    path = synthetic_csv(tmp_path / "multi.csv", rows=50, stations=("EST-02", "EST-07"))
    data = load_csv(path, sensors=("power", "flow"))
    assert list(data.stations) == ["EST-02", "EST-07"]
    assert data.sensors == ("power", "flow")
    assert data.stations["EST-07"].values.shape == (50, 2)
    assert data.stations["EST-07"].lines[0] == 52


def test_offsets_are_converted_to_utc(tmp_path: Path) -> None:
    path = tmp_path / "tz.csv"
    path.write_text("timestamp,flow,label\n2025-01-01T01:00:00+01:00,1,0\n2025-01-01T00:01:00Z,2,0\n")
    data = load_csv(path)
    assert data.stations[DEFAULT_STATION].ts[0] == np.datetime64("2025-01-01T00:00:00")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("timestamp,flow\n2025-01-01 00:00:00,1\n", r"line 1.*missing column 'label'"),
        ("time,flow,label\n2025-01-01 00:00:00,1,0\n", r"line 1.*missing column 'timestamp'"),
        (
            "timestamp,flow,label\n2025-01-01 00:00:00,1,0\n2025-01-01 00:01:00,abc,0\n",
            r"line 3, column 'flow' \(column 2\): not a finite number: 'abc'",
        ),
        ("timestamp,flow,label\n2025-01-01 00:00:00,inf,0\n", r"line 2, column 'flow'.*not a finite number"),
        (
            "timestamp,flow,label\n2025-01-01 00:01:00,1,0\n2025-01-01 00:00:00,1,0\n",
            r"line 3, column 'timestamp' \(column 1\): timestamps not sorted",
        ),
        (
            "timestamp,flow,label\n2025-01-01 00:00:00,1,0\n2025-01-01 00:00:00,1,0\n",
            r"line 3, column 'timestamp'.*duplicate timestamp.*line 2",
        ),
        ("timestamp,flow,label\nyesterday,1,0\n", r"line 2, column 'timestamp'.*not a timestamp"),
        (
            "timestamp,flow,label\n2025-01-01 00:00:00,1,2\n",
            r"line 2, column 'label'.*0, 1 or empty.*--anomaly-values",
        ),
        ("station_id,timestamp,flow,label\nbad id,2025-01-01 00:00:00,1,0\n", r"line 2, column 'station_id'"),
    ],
)
def test_bad_input_names_file_line_and_column(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(DataError, match=expected) as caught:
        load_csv(path)
    assert str(path) in str(caught.value)


def test_missing_sensor_asked_for(seed_like_csv: Path) -> None:
    with pytest.raises(DataError, match="missing column 'vibration'"):
        load_csv(seed_like_csv, sensors=("flow", "vibration"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_csv(tmp_path / "nope.csv")


def test_simulator_layout_event_columns_are_not_sensors(tmp_path: Path) -> None:
    path = tmp_path / "sim.csv"
    path.write_text(
        "timestamp,station_id,flow,pressure,label,event_type,event_id\n"
        "2025-01-01T00:00:00Z,EST-01,533.0,81.4,0,,\n"
        "2025-01-01T00:01:00Z,EST-01,400.0,60.1,1,theft,EV-0001\n"
    )
    data = load_csv(path)
    assert data.sensors == ("flow", "pressure")
    assert data.n_anomalous == 1
