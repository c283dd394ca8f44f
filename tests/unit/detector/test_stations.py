from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from detector.readings import Reading
from detector.records import FUTURE_TIMESTAMP, KEY_MISMATCH, UNKNOWN_STATION
from detector.stations import Refusal, StationTable
from detector.topology import Topology
from detector.windows import WindowSpec
from tests.property_depth import examples

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SENSORS = ("flow", "pressure", "pump_rpm", "tank_level", "power", "suction_pressure")
NOW = T0.timestamp() + 3600


def reading(station: str, minute: int, flow: float = 500.0) -> Reading:
    values = dict(zip(SENSORS, (flow, 60.0, 1700.0, 10.0, 400.0, 3.0), strict=True))
    return Reading(station_id=station, ts=T0 + timedelta(minutes=minute), values=values)


def table(**options: object) -> StationTable:
    return StationTable(WindowSpec(), len(SENSORS), **options)  # type: ignore[arg-type]


def test_windows_close_as_the_station_watermark_passes_their_end() -> None:
    stations = table()
    closed = []
    for minute in range(40):
        result = stations.admit(reading("EST-01", minute), b"EST-01", 0, NOW)
        assert not isinstance(result, Refusal)
        closed += [window.end for window in result]
    # first end 00:30 (the first 30 min), then every 5 min once lateness (2 min) has passed
    assert closed == [T0 + timedelta(minutes=30), T0 + timedelta(minutes=35)]
    assert stations.take_outcomes() == {"accepted": 40, "late": 0, "duplicate": 0}


def test_refusals_name_the_reason() -> None:
    stations = table(known=("EST-01",), check_known=True, max_future_s=60)
    assert stations.admit(reading("EST-09", 0), None, 0, NOW) == Refusal(UNKNOWN_STATION, "EST-09")
    wrong_key = stations.admit(reading("EST-01", 0), b"EST-02", 0, NOW)
    assert isinstance(wrong_key, Refusal) and wrong_key.reason == KEY_MISMATCH
    ahead = stations.admit(reading("EST-01", 0), b"EST-01", 0, T0.timestamp() - 120)
    assert isinstance(ahead, Refusal) and ahead.reason == FUTURE_TIMESTAMP
    assert len(stations) == 0  # nothing refused leaves a station behind
    assert stations.admit(reading("EST-01", 0), b"EST-01", 0, NOW) == []
    second_key = stations.admit(reading("EST-01", 1), b"EST-1", 0, NOW)
    assert isinstance(second_key, Refusal) and second_key.reason == KEY_MISMATCH


def test_late_and_duplicate_readings_are_counted() -> None:
    stations = table()
    for minute in range(10):
        stations.admit(reading("EST-01", minute), None, 0, NOW)
    stations.admit(reading("EST-01", 9), None, 0, NOW)
    stations.admit(reading("EST-01", 2), None, 0, NOW)
    assert stations.take_outcomes() == {"accepted": 10, "late": 1, "duplicate": 1}
    assert stations.take_outcomes() == {"accepted": 0, "late": 0, "duplicate": 0}


def test_a_silent_station_closes_its_windows_on_the_idle_clock() -> None:
    stations = table(idle_timeout_s=120)
    for minute in range(31):
        stations.admit(reading("EST-01", minute), None, 0, NOW)
    assert stations.close_idle(NOW + 100) == []  # not silent long enough
    closed = stations.close_idle(NOW + 20 * 60)
    assert [sid for sid, _window in closed] == ["EST-01"] * len(closed)
    assert closed[0][1].end == T0 + timedelta(minutes=30)
    assert any(window.data is None for _sid, window in closed)  # silence: windows without data


def test_rebuilt_readings_move_the_buffer_but_are_not_counted_or_kept_for_the_line() -> None:
    stations = table(topology=two_station_line())
    for minute in range(35):
        stations.rebuild(reading("EST-01", minute), None, 0, NOW, NOW)
    assert stations.take_outcomes() == {"accepted": 0, "late": 0, "duplicate": 0}
    assert stations.take_line_readings() == []
    closed = stations.admit(reading("EST-01", 37), None, 0, NOW)  # the 00:35 window: built from rebuilt data
    assert not isinstance(closed, Refusal)
    assert [window.end for window in closed] == [T0 + timedelta(minutes=35)]
    assert closed[0].data is not None


def two_station_line() -> Topology:
    return Topology.from_dict(
        {
            "format": 1,
            "line": [
                {
                    "id": "L1",
                    "station": [
                        {"id": "EST-01", "tank_area_m2": 250.0},
                        {"id": "EST-02", "tank_area_m2": "none"},
                    ],
                    "segment": [
                        {
                            "upstream": "EST-01",
                            "downstream": "EST-02",
                            "length_km": 40,
                            "inner_diameter_m": 0.3,
                        }
                    ],
                }
            ],
        }
    )


def test_accepted_readings_of_a_line_are_kept_with_the_balance_fields_only() -> None:
    stations = table(topology=two_station_line())
    stations.admit(reading("EST-01", 0, flow=510.0), None, 0, NOW)
    stations.admit(reading("EST-01", 0, flow=999.0), None, 0, NOW)  # duplicate: not kept
    stations.admit(reading("EST-07", 0), None, 1, NOW)  # not on the line: scored, counted
    kept = stations.take_line_readings()
    assert stations.line_fields == ("flow", "pressure", "suction_pressure", "tank_level")
    assert kept == [("L1", "EST-01", T0.timestamp(), (510.0, 60.0, 3.0, 10.0))]
    assert stations.take_off_line() == 1
    assert stations.take_line_readings() == []


def test_dropping_partitions_forgets_their_stations() -> None:
    stations = table()
    stations.admit(reading("EST-01", 0), None, 0, NOW)
    stations.admit(reading("EST-02", 0), None, 1, NOW)
    assert stations.drop_partitions({1}) == ["EST-02"]
    assert stations.partitions() == {0}
    views = list(stations.views(lambda _sid: False))
    assert [view.station_id for view in views] == ["EST-01"]
    assert views[0].newest_event_s == T0.timestamp()


@settings(max_examples=examples(100), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["EST-01", "EST-02", "EST-09"]),
            st.sampled_from([None, b"EST-01", b"EST-02", b"EST-09", b"forged"]),
            st.integers(min_value=0, max_value=200),
        ),
        max_size=60,
    )
)
def test_rebuild_refuses_exactly_what_admit_refuses(
    messages: list[tuple[str, bytes | None, int]],
) -> None:
    """One admission path: a restart must not re-ingest what the live loop dead-lettered."""
    options = {"known": ("EST-01", "EST-02"), "check_known": True, "max_future_s": 60 * 60}
    live, rebuilt = table(**options), table(**options)
    for station, key, minute in messages:
        admitted = live.admit(reading(station, minute), key, 0, NOW)
        again = rebuilt.rebuild(reading(station, minute), key, 0, NOW, NOW)
        assert isinstance(admitted, Refusal) == isinstance(again, Refusal)
        if isinstance(admitted, Refusal):
            assert again == admitted
    assert {sid for sid, _ in live.items()} == {sid for sid, _ in rebuilt.items()}


def test_a_rebuilt_stamp_is_judged_against_its_produce_time() -> None:
    """Live refused it as from the future on arrival; a restart a day later must not take it."""
    stations = table(max_future_s=60)
    ahead = reading("EST-01", 120)  # 2 h after T0
    produced = T0.timestamp()
    assert stations.admit(ahead, None, 0, produced) == stations.rebuild(ahead, None, 0, NOW + 86400, produced)
