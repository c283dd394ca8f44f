"""The oracle sees what the service's line sees: the readings its station buffers accept."""

from __future__ import annotations

from datetime import UTC, datetime

from evaluation.suites.sim_live import admitted


def test_a_second_reading_in_the_same_nearest_minute_is_a_duplicate_per_station() -> None:
    def at(hh: int, mm: int, ss: int) -> datetime:
        return datetime(2025, 1, 1, hh, mm, ss, tzinfo=UTC)

    readings = [
        ("A", at(10, 0, 29), {"flow": 1.0}),  # slot 10:00
        ("A", at(10, 0, 31), {"flow": 2.0}),  # slot 10:01
        ("B", at(10, 0, 40), {"flow": 3.0}),  # slot 10:01 of another station: kept
        ("A", at(10, 1, 29), {"flow": 4.0}),  # slot 10:01 again: the clock wandered back, dropped
        ("A", at(10, 2, 0), {"flow": 5.0}),
    ]
    kept = [(station, values["flow"]) for station, _ts, values in admitted(readings)]
    assert kept == [("A", 1.0), ("A", 2.0), ("B", 3.0), ("A", 5.0)]
