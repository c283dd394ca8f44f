"""The replay loop end to end without a broker: file -> prepared batches -> a sink that remembers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from detector.clock import ManualClock
from detector.errors import DataError
from detector.readings import DEFAULT_SENSORS, Reading, ReadingParser
from replay.csv_source import CsvSource, SourceOptions
from replay.disorder import DisorderOptions
from replay.prepare import PreparedStream, prepare, prepare_file
from replay.producer import ReplayOptions, run


class MemorySink:
    def __init__(self, clock: ManualClock | None = None, fail_every: int = 0) -> None:
        self.messages: list[tuple[bytes, bytes, float]] = []
        self.clock = clock
        self.fail_every = fail_every

    def send(self, values: list[bytes], keys: list[bytes]) -> None:
        at = self.clock.monotonic() if self.clock else 0.0
        self.messages.extend((key, value, at) for value, key in zip(values, keys, strict=True))

    def wait(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.advance(seconds)

    def finish(self, timeout_s: float) -> tuple[int, int, str | None]:
        errors = len(self.messages) // self.fail_every if self.fail_every else 0
        return len(self.messages), errors, "boom" if errors else None


def simulator_csv(tmp_path: Path, minutes: int = 30, stations: int = 3) -> Path:
    lines = ["timestamp,station_id,flow,pressure,pump_rpm,tank_level,power,temperature,label,event_id"]
    for minute in range(minutes):
        for station in range(1, stations + 1):
            label = 1 if minute == 7 else 0
            lines.append(
                f"2025-01-01T{minute // 60:02d}:{minute % 60:02d}:00Z,EST-{station:02d},"
                f"{500 + minute + station / 10},{70 + station},{1800 + minute},{15.5},{400.25},21.0,{label},"
                f"{'ev-1' if label else ''}"
            )
    lines.insert(5, "2025-01-01T00:01:00Z,EST-01,oops,70,1800,15,400,21,0,")
    path = tmp_path / "readings.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_reading_arrives_in_per_station_order_without_labels(tmp_path: Path) -> None:
    path = simulator_csv(tmp_path)
    sink = MemorySink()
    summary = run(prepare_file(path, SourceOptions(), DisorderOptions(), 1), sink, speed=None)
    assert (summary.rows_read, summary.rejected, summary.queued, summary.delivered) == (91, 1, 90, 90)
    assert summary.rejects[0].line == 6
    assert summary.rejected_by_reason == {"not_a_number": 1}
    parser = ReadingParser(DEFAULT_SENSORS, limits={})
    per_station: dict[bytes, list[Reading]] = {}
    for key, value, _ in sink.messages:
        body = orjson.loads(value)
        assert set(body) == {"station_id", "ts", *DEFAULT_SENSORS}  # no label, event id, temperature
        reading = parser.parse(value)
        assert isinstance(reading, Reading)
        assert key == reading.station_id.encode()
        per_station.setdefault(key, []).append(reading)
    assert sorted(per_station) == [b"EST-01", b"EST-02", b"EST-03"]
    for readings in per_station.values():
        assert len(readings) == 30
        assert [r.ts for r in readings] == sorted(r.ts for r in readings)
    assert per_station[b"EST-02"][3].values["flow"] == 503.2


def test_passes_shift_time_forward_by_the_span_plus_a_step(tmp_path: Path) -> None:
    path = simulator_csv(tmp_path, minutes=10, stations=1)
    sink = MemorySink()
    summary = run(prepare_file(path, SourceOptions(), DisorderOptions(), 3), sink, speed=None)
    assert summary.passes == 3
    stamps = [orjson.loads(value)["ts"] for _, value, _ in sink.messages]
    assert len(stamps) == 30
    assert stamps[9:11] == ["2025-01-01T00:09:00Z", "2025-01-01T00:10:00Z"]
    assert stamps[-1] == "2025-01-01T00:29:00Z"


def test_paced_replay_follows_the_file_clock(tmp_path: Path) -> None:
    path = simulator_csv(tmp_path, minutes=30, stations=2)
    clock = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
    sink = MemorySink(clock)
    summary = run(prepare_file(path, SourceOptions(), DisorderOptions(), 1), sink, speed=60.0, clock=clock)
    times = [at for _, _, at in sink.messages]
    assert times[-1] - times[0] == pytest.approx(29.0, abs=0.01)  # 29 minutes of data at 60x
    assert summary.send_span_s == pytest.approx(29.0, abs=0.01)
    # Both stations of a minute leave together, a second of wall time after the minute before.
    assert times[0] == times[1]
    assert times[2] - times[0] == pytest.approx(1.0, abs=0.003)


def test_disorder_is_counted(tmp_path: Path) -> None:
    path = simulator_csv(tmp_path, minutes=200, stations=3)
    options = DisorderOptions(shuffle_within=timedelta(minutes=2), duplicate_rate=0.1, drop_rate=0.1, seed=5)
    sink = MemorySink()
    summary = run(prepare_file(path, SourceOptions(), options, 1), sink, speed=None)
    assert summary.dropped > 0
    assert summary.duplicated > 0
    assert summary.queued == 600 - summary.dropped + summary.duplicated


def test_delivery_errors_are_reported(tmp_path: Path) -> None:
    sink = MemorySink(fail_every=10)
    summary = run(
        prepare_file(simulator_csv(tmp_path), SourceOptions(), DisorderOptions(), 1), sink, speed=None
    )
    assert summary.delivery_errors == 9
    assert summary.delivered == 81
    assert summary.first_delivery_error == "boom"


@pytest.mark.slow
@pytest.mark.parametrize("start_method", [None, "fork", "forkserver"])
def test_helper_process_gives_the_same_batches(tmp_path: Path, start_method: str | None) -> None:
    path = simulator_csv(tmp_path)
    inline = [block.batch.payload for block in prepare_file(path, SourceOptions(), DisorderOptions(), 2)]
    stream = PreparedStream(path, SourceOptions(), DisorderOptions(), 2, start_method=start_method)
    try:
        helped = [block.batch.payload for block in stream]
    finally:
        stream.close()
    assert helped == inline
    assert len(inline) == 2
    assert not list(Path("/dev/shm").glob("centinela-replay-*"))  # the shared file is gone


def test_helper_process_errors_reach_the_caller(tmp_path: Path) -> None:
    stream = PreparedStream(simulator_csv(tmp_path), SourceOptions(strict=True), DisorderOptions(), 1)
    try:
        with pytest.raises(DataError, match=r"readings.csv:6: not_a_number"):
            list(stream)
    finally:
        stream.close()


def test_small_batches_cover_every_row(tmp_path: Path) -> None:
    source = CsvSource(simulator_csv(tmp_path))
    blocks = list(prepare(source, DEFAULT_SENSORS, DisorderOptions(), 1, batch_rows=7))
    assert sum(len(b.batch) for b in blocks) == 90
    assert sum(b.rows_read for b in blocks) == 91


def test_options_refuse_nonsense() -> None:
    with pytest.raises(Exception, match="compression"):
        ReplayOptions(compression="brotli")


def test_every_pass_counts_its_bad_rows_but_names_them_once(tmp_path: Path) -> None:
    summary = run(
        prepare_file(simulator_csv(tmp_path), SourceOptions(), DisorderOptions(), 2), MemorySink(), speed=None
    )
    assert (summary.rows_read, summary.rejected, summary.delivered) == (182, 2, 180)
    assert [row.line for row in summary.rejects] == [6]


@pytest.mark.slow  # waits out its 1 s timeout
def test_an_unreachable_broker_is_a_broker_error() -> None:
    from detector.errors import BrokerError
    from kafkakit.admin import ensure_topic

    # Port 1 on loopback refuses at once: no network needed, and the answer comes within the timeout.
    with pytest.raises(BrokerError, match="cannot reach Kafka"):
        ensure_topic(
            {"bootstrap.servers": "127.0.0.1:1", "log_level": 0}, "centinela.readings", 1, timeout_s=1.0
        )
