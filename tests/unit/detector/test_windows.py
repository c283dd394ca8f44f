from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.errors import ConfigError
from detector.windows import (
    GAP_TOO_LONG,
    INSUFFICIENT_DATA,
    AddOutcome,
    ClosedWindow,
    StationBuffer,
    WindowBatch,
    WindowSpec,
    batch_windows,
)
from tests.property_depth import examples

DATASET = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "rebombeo_huachicoleo.csv"
SENSORS = ["flow", "pressure", "pump_rpm", "tank_level", "power"]
T0 = datetime(2025, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SPEC = WindowSpec()


def minutes(offsets: list[int] | npt.NDArray[np.int64]) -> npt.NDArray[np.datetime64]:
    base = np.datetime64("2025-01-01T00:00:00", "ns")
    return base + np.asarray(offsets, dtype=np.int64) * np.timedelta64(1, "m")


def series(offsets: list[int], n_sensors: int = 2) -> npt.NDArray[np.float64]:
    """Values that encode their own minute, so a window's content shows where each row came from."""
    column = np.asarray(offsets, dtype=np.float64)
    return np.stack([column + 1000.0 * k for k in range(n_sensors)], axis=1)


def stream(
    arrivals: list[int], values: npt.NDArray[np.float64], spec: WindowSpec = SPEC
) -> tuple[list[ClosedWindow], list[AddOutcome]]:
    buffer = StationBuffer(spec, values.shape[1])
    closed: list[ClosedWindow] = []
    outcomes: list[AddOutcome] = []
    for offset, row in zip(arrivals, values, strict=True):
        outcomes.append(buffer.add(T0 + offset * MINUTE, row))
        watermark = buffer.watermark
        assert watermark is not None
        closed += buffer.close_until(watermark)
    closed += buffer.flush()
    return closed, outcomes


def assert_same_windows(batch: WindowBatch, closed: list[ClosedWindow]) -> None:
    good = [w for w in closed if w.data is not None]
    assert [np.datetime64(w.end.replace(tzinfo=None), "ns") for w in good] == list(batch.ends)
    if good:
        np.testing.assert_array_equal(np.stack([w.data for w in good if w.data is not None]), batch.data)
    assert [(w.end, w.skip_reason) for w in closed if w.data is None] == [
        (s.end, s.reason) for s in batch.skipped
    ]


# -- the spec ------------------------------------------------------------------------------
def test_default_spec_is_the_original_geometry() -> None:
    assert SPEC.samples_per_window == 30
    assert SPEC.step_slots == 5
    assert SPEC.min_samples == 24
    assert WindowSpec.from_seconds(SPEC.to_seconds()) == SPEC


@pytest.mark.parametrize(
    "changes",
    [
        {"sampling": timedelta(0)},
        {"length": timedelta(seconds=90)},
        {"step": timedelta(0)},
        {"min_coverage": 0.0},
        {"min_coverage": 1.5},
        {"allowed_lateness": timedelta(seconds=-60)},
    ],
)
def test_invalid_specs_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        WindowSpec(**changes)  # type: ignore[arg-type]


# -- batch ---------------------------------------------------------------------------------
def test_original_dataset_windows_equal_the_grid_windows() -> None:
    pd = pytest.importorskip("pandas")
    if not DATASET.exists():
        pytest.skip(f"{DATASET} not available")
    frame = pd.read_csv(DATASET)
    ts = pd.to_datetime(frame["timestamp"]).to_numpy()
    values = frame[SENSORS].to_numpy()
    labels = frame["label"].to_numpy()
    batch = batch_windows(ts, values, SPEC, labels=labels)
    # The original pipeline: 30 rows, step 5 rows, from row 0 (00:00).
    starts = range(0, len(values) - 30 + 1, 5)
    original = np.stack([values[i : i + 30] for i in starts]).astype(np.float32)
    original_labels = np.array([labels[i : i + 30].max() for i in starts], dtype=np.int8)
    np.testing.assert_array_equal(batch.data, original)
    assert batch.labels is not None
    np.testing.assert_array_equal(batch.labels, original_labels)
    assert batch.ends[0] == np.datetime64("2025-01-01T00:30:00")
    assert not batch.skipped


def test_first_window_starts_at_the_first_sample_never_before() -> None:
    offsets = list(range(7, 60))
    batch = batch_windows(minutes(offsets), series(offsets), SPEC)
    # First sample 00:07 → the first window [end - 30, end) with end - 30 >= 00:07 ends at 00:40.
    assert batch.ends[0] == np.datetime64("2025-01-01T00:40:00")
    assert batch.data[0, 0, 0] == 10.0
    assert not batch.skipped


def test_short_gaps_are_filled_forward_and_long_ones_skip_the_window() -> None:
    offsets = [m for m in range(0, 90) if not 33 <= m <= 35 and not 60 <= m <= 65]
    batch = batch_windows(minutes(offsets), series(offsets), SPEC)
    ends = {str(e)[11:16]: i for i, e in enumerate(batch.ends)}
    window = batch.data[ends["00:40"]]  # rows 00:10 .. 00:39, 33-35 filled with 32
    assert list(window[23:26, 0]) == [32.0, 32.0, 32.0]
    assert window[26, 0] == 36.0
    # The 6-minute gap 60-65 can't be filled (max_fill 5): windows covering minute 65 are skipped.
    skipped = {s.end.strftime("%H:%M"): s.reason for s in batch.skipped}
    assert skipped == dict.fromkeys(["01:10", "01:15", "01:20", "01:25", "01:30"], GAP_TOO_LONG)
    # 01:05 ends before minute 65, the one slot more than max_fill away from its source.
    assert "01:05" in ends


def test_a_fill_source_may_lie_before_the_window_start() -> None:
    offsets = [m for m in range(0, 80) if not 40 <= m <= 42]
    batch = batch_windows(minutes(offsets), series(offsets), SPEC)
    index = list(batch.ends).index(np.datetime64("2025-01-01T01:10:00"))
    assert list(batch.data[index, :3, 0]) == [39.0, 39.0, 39.0]


def test_too_little_data_is_skipped_as_insufficient() -> None:
    offsets = [m for m in range(0, 60) if m % 4 != 0]  # 75 % coverage, every gap one minute
    batch = batch_windows(minutes(offsets), series(offsets), SPEC)
    assert len(batch.data) == 0
    assert {s.reason for s in batch.skipped} == {INSUFFICIENT_DATA}


def test_duplicates_keep_the_first_row_and_order_does_not_matter() -> None:
    offsets = list(range(0, 40))
    values = series(offsets)
    shuffled = np.random.default_rng(0).permutation(len(offsets))
    dup_ts = np.concatenate([minutes(offsets)[shuffled], minutes([10])])
    dup_values = np.concatenate([values[shuffled], [[-1.0, -1.0]]])
    batch = batch_windows(dup_ts, dup_values, SPEC)
    reference = batch_windows(minutes(offsets), values, SPEC)
    np.testing.assert_array_equal(batch.data, reference.data)


def test_rows_with_nan_count_as_missing() -> None:
    offsets = list(range(0, 40))
    values = series(offsets)
    values[20, 1] = np.nan
    batch = batch_windows(minutes(offsets), values, SPEC)
    assert batch.data[0, 20, 1] == batch.data[0, 19, 1]


def test_timestamps_snap_to_the_nearest_sampling_point() -> None:
    ts = minutes(list(range(0, 35))) + np.timedelta64(20, "s")
    ts[5] -= np.timedelta64(50, "s")  # 00:04:30 → nearest is 00:05 (half up)
    batch = batch_windows(ts, series(list(range(35))), SPEC)
    assert batch.ends[0] == np.datetime64("2025-01-01T00:30:00")


def test_labels_mark_windows_with_any_labelled_sample() -> None:
    offsets = list(range(0, 45))
    labels = np.zeros(len(offsets))
    labels[31] = 1
    batch = batch_windows(minutes(offsets), series(offsets), SPEC, labels=labels)
    assert batch.labels is not None
    assert list(batch.ends) == list(minutes([30, 35, 40, 45]))
    assert list(batch.labels) == [0, 1, 1, 1]


def test_empty_and_all_nan_inputs_give_no_windows() -> None:
    assert len(batch_windows(minutes([]), np.empty((0, 2)), SPEC).data) == 0
    assert len(batch_windows(minutes([0, 1]), np.full((2, 2), np.nan), SPEC).data) == 0


# -- streaming -----------------------------------------------------------------------------
def test_stream_in_order_equals_batch_on_the_original_geometry() -> None:
    offsets = [m for m in range(0, 300) if m % 37 != 5 and not 100 <= m <= 110]
    values = series(offsets, 5)
    closed, outcomes = stream(offsets, values)
    assert set(outcomes) == {AddOutcome.ACCEPTED}
    assert_same_windows(batch_windows(minutes(offsets), values, SPEC), closed)


def test_late_and_duplicate_samples_are_reported_and_dropped() -> None:
    buffer = StationBuffer(SPEC, 1)
    for m in range(0, 40):
        assert buffer.add(T0 + m * MINUTE, [float(m)]) is AddOutcome.ACCEPTED
    assert buffer.add(T0 + 39 * MINUTE, [-1.0]) is AddOutcome.DUPLICATE
    assert buffer.add(T0 + 38 * MINUTE, [-1.0]) is AddOutcome.DUPLICATE  # within lateness, already there
    assert buffer.add(T0 + 36 * MINUTE, [-1.0]) is AddOutcome.LATE  # older than 39 - 2
    (window,) = buffer.close_until(T0 + 34 * MINUTE)
    assert window.end == T0 + 30 * MINUTE
    assert window.data is not None and window.data[-1, 0] == 29.0


def test_close_until_beyond_the_data_skips_and_makes_older_samples_late() -> None:
    buffer = StationBuffer(SPEC, 1)
    for m in range(0, 31):
        buffer.add(T0 + m * MINUTE, [1.0])
    closed = buffer.close_until(T0 + 60 * MINUTE)  # the station went silent; the service moves on
    assert [w.end for w in closed] == [T0 + m * MINUTE for m in (30, 35, 40, 45, 50, 55, 60)]
    # 00:35 still has 26 samples, the last four slots filled forward; then too little data.
    assert closed[0].data is not None and closed[1].data is not None
    assert all(w.skip_reason == INSUFFICIENT_DATA for w in closed[2:])
    assert buffer.add(T0 + 59 * MINUTE, [1.0]) is AddOutcome.LATE
    assert buffer.watermark == T0 + 60 * MINUTE


def test_close_until_between_grid_points_rounds_down() -> None:
    buffer = StationBuffer(SPEC, 1)
    for m in range(0, 40):
        buffer.add(T0 + m * MINUTE, [1.0])
    assert buffer.close_until(T0 + 29 * MINUTE + timedelta(seconds=59)) == []
    assert len(buffer.close_until(T0 + 30 * MINUTE)) == 1


def test_watermark_is_newest_minus_lateness() -> None:
    buffer = StationBuffer(SPEC, 1)
    assert buffer.watermark is None
    buffer.add(T0 + 10 * MINUTE, [1.0])
    assert buffer.watermark == T0 + 8 * MINUTE
    assert buffer.newest == T0 + 10 * MINUTE


def test_windows_wait_in_the_buffer_if_the_caller_closes_rarely() -> None:
    offsets = list(range(0, 200))
    values = series(offsets, 1)
    buffer = StationBuffer(SPEC, 1)
    for m, row in zip(offsets, values, strict=True):
        buffer.add(T0 + m * MINUTE, row)
    closed = buffer.close_until(T0 + 200 * MINUTE)
    assert_same_windows(batch_windows(minutes(offsets), values, SPEC), closed)


def test_buffer_memory_does_not_grow_with_history() -> None:
    buffer = StationBuffer(SPEC, 5)
    row = np.ones(5, dtype=np.float32)

    def feed(start: int, count: int) -> None:
        for m in range(start, start + count):
            buffer.add(T0 + m * MINUTE, row)
            buffer.close_until(T0 + (m - 2) * MINUTE)

    feed(0, 100)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    feed(100, 2000)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth < 4096


lateness_minutes = SPEC.lateness_slots


@st.composite
def arrival_orders(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """A series with gaps and duplicates, and an arrival order where nothing is late."""
    length = draw(st.integers(min_value=0, max_value=150))
    start = draw(st.integers(min_value=0, max_value=12))
    present = draw(st.lists(st.booleans().map(lambda b: b or False), min_size=length, max_size=length))
    keep_most = draw(st.floats(min_value=0.6, max_value=1.0))
    rng = np.random.default_rng(draw(st.integers(min_value=0, max_value=2**32 - 1)))
    offsets = [start + i for i in range(length) if present[i] or rng.random() < keep_most]
    # Arrival key = event time + a delay of up to the lateness: then no sample is late.
    delays = rng.integers(0, lateness_minutes + 1, size=len(offsets))
    order = sorted(range(len(offsets)), key=lambda i: (offsets[i] + delays[i], rng.random()))
    arrivals = [offsets[i] for i in order]
    duplicates = draw(st.lists(st.integers(min_value=0, max_value=max(len(arrivals) - 1, 0)), max_size=5))
    for index in sorted(duplicates, reverse=True):
        if arrivals:
            arrivals.insert(index + 1, arrivals[index])  # an immediate re-delivery of the same reading
    return offsets, arrivals


@pytest.mark.slow
@settings(max_examples=examples(150), deadline=None)
@given(arrival_orders())
def test_any_arrival_order_within_lateness_gives_the_batch_windows(
    case: tuple[list[int], list[int]],
) -> None:
    offsets, arrivals = case
    values_of = {m: [float(m), 1000.0 + m] for m in offsets}
    arrival_values = np.array([values_of[m] for m in arrivals]).reshape(len(arrivals), 2)
    closed, outcomes = stream(arrivals, arrival_values)
    assert AddOutcome.LATE not in outcomes
    assert outcomes.count(AddOutcome.DUPLICATE) == len(arrivals) - len(offsets)
    batch = batch_windows(minutes(offsets), series(offsets), SPEC)
    assert_same_windows(batch, closed)


@settings(max_examples=examples(50), deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=120), min_size=1, max_size=120),
    st.sampled_from([WindowSpec(), WindowSpec(length=timedelta(minutes=10), step=timedelta(minutes=2),
                     max_fill=timedelta(0), min_coverage=1.0, allowed_lateness=timedelta(0))]),
)  # fmt: skip
def test_sorted_arrival_of_any_series_gives_the_batch_windows(raw: list[int], spec: WindowSpec) -> None:
    offsets = sorted(set(raw))
    closed, _ = stream(offsets, series(offsets), spec)
    assert_same_windows(batch_windows(minutes(offsets), series(offsets), spec), closed)


@settings(max_examples=examples(150), deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=90), min_size=1, max_size=150),
    st.sampled_from([SPEC, WindowSpec(allowed_lateness=timedelta(0)), WindowSpec(max_fill=timedelta(0))]),
)
def test_any_arrival_order_gives_the_batch_windows_of_the_accepted_samples(
    arrivals: list[int], spec: WindowSpec
) -> None:
    """Late samples are dropped; what was accepted cuts exactly the batch windows (first wins)."""
    values = np.array([[float(m), float(i)] for i, m in enumerate(arrivals)])  # i tells duplicates apart
    closed, outcomes = stream(arrivals, values, spec)
    accepted = [i for i, outcome in enumerate(outcomes) if outcome is AddOutcome.ACCEPTED]
    seen: set[int] = set()
    for m, outcome in zip(arrivals, outcomes, strict=True):
        assert (outcome is AddOutcome.DUPLICATE) == (m in seen and outcome is not AddOutcome.LATE)
        if outcome is AddOutcome.ACCEPTED:
            seen.add(m)
    batch = batch_windows(minutes([arrivals[i] for i in accepted]), values[accepted], spec)
    assert_same_windows(batch, closed)


# -- gaps longer than max_gap_windows (issue 22) ----------------------------------------------
def test_a_year_old_first_reading_cannot_open_a_year_of_windows() -> None:
    buffer = StationBuffer(SPEC, 1, max_gap_windows=72)
    now = T0 + timedelta(days=365)
    buffer.add(T0, [1.0])
    buffer.add(now, [1.0])
    closed = buffer.take_ready()
    # The windows that could hold the old reading (ending 00:30 and 00:35) plus 72 empty ones.
    assert len(closed) == 2 + 72
    assert all(w.data is None for w in closed)
    windows, gaps = buffer.take_skipped()
    assert gaps == 1
    assert len(closed) + windows == (now - MINUTE * 2 - (T0 + 30 * MINUTE)) // (5 * MINUTE) + 1
    assert buffer.take_skipped() == (0, 0)
    for m in range(1, 40):  # the station goes on as if nothing happened
        assert buffer.add(now + m * MINUTE, [1.0]) is AddOutcome.ACCEPTED
    assert any(w.data is not None for w in buffer.close_until(now + 40 * MINUTE))


def test_a_silent_station_skips_beyond_the_bound_and_counts_it_as_one_gap() -> None:
    buffer = StationBuffer(SPEC, 1, max_gap_windows=3)
    for m in range(0, 40):
        buffer.add(T0 + m * MINUTE, [1.0])
    closed = []
    for m in range(40, 400, 5):  # the idle clock closes a little at a time
        closed += buffer.close_until(T0 + m * MINUTE)
    assert max(w.end for w in closed) <= T0 + (39 + 35 + 3 * 5) * MINUTE
    windows, gaps = buffer.take_skipped()
    assert windows > 50 and gaps == 1


@settings(max_examples=examples(100), deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=2000), min_size=1, max_size=120),
    st.integers(min_value=1, max_value=4),
)
def test_a_bounded_gap_cuts_every_window_that_holds_a_sample(raw: list[int], bound: int) -> None:
    """Only windows without a single sample are skipped: the scorable ones, and the first ``bound``
    empty ones of each gap, are the batch windows."""
    offsets = sorted(set(raw))
    values = series(offsets)
    buffer = StationBuffer(SPEC, 2, max_gap_windows=bound)
    closed: list[ClosedWindow] = []
    for offset, row in zip(offsets, values, strict=True):
        buffer.add(T0 + offset * MINUTE, row)
        closed += buffer.take_ready()
    closed += buffer.flush()
    batch = batch_windows(minutes(offsets), values, SPEC)
    good = [w for w in closed if w.data is not None]
    assert [np.datetime64(w.end.replace(tzinfo=None), "ns") for w in good] == list(batch.ends)
    skipped, _ = buffer.take_skipped()
    assert len(closed) + skipped == len(batch.ends) + len(batch.skipped)
    cut = {w.end for w in closed}
    reach = (SPEC.samples_per_window + SPEC.fill_slots) * MINUTE
    for window in batch.skipped:
        holds_a_sample = any(window.end - reach <= T0 + m * MINUTE < window.end for m in offsets)
        if holds_a_sample:
            assert window.end in cut
