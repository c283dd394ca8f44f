"""Replay against a real broker: a simulator file read back with kcat, topic creation, pacing, the CLI."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pandas as pd
import pytest
from typer.testing import CliRunner

from detector.readings import DEFAULT_SENSORS, Reading, ReadingParser
from replay.csv_source import SourceOptions
from replay.producer import ReplayOptions, replay_csv, replay_frame
from tests.integration.kafka_helpers import Kcat, TopicFactory

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def simulator_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from simulator.engine import simulate
    from simulator.scenario import SimulationConfig
    from simulator.writer import write_outputs

    out = tmp_path_factory.mktemp("sim")
    # On-the-minute stamps: the pacing test expects a 4-minute cut to span exactly 4 minutes.
    written = write_outputs(simulate(SimulationConfig(stations=3, days=0.5, seed=11, clock_skew_s=0.0)), out)
    return written.readings


def read_back(kcat: Kcat, topic: str) -> list[tuple[int, str, bytes]]:
    lines = kcat.consume(topic, fmt="%p\\t%k\\t%s\\n", timeout=60)
    result = []
    for line in lines:
        partition, key, value = line.split("\t", 2)
        result.append((int(partition), key, value.encode()))
    return result


def test_a_simulator_file_reads_back_in_station_order_with_the_same_values(
    simulator_file: Path, fresh_topic: TopicFactory, kafka_config: dict[str, str], kcat: Kcat
) -> None:
    topic = fresh_topic(partitions=3)
    summary = replay_csv(simulator_file, topic, ReplayOptions(), kafka_config)
    expected = pd.read_csv(
        simulator_file, keep_default_na=False, na_values={s: [""] for s in DEFAULT_SENSORS}
    )
    complete = expected.dropna(subset=list(DEFAULT_SENSORS))
    assert summary.rows_read == len(expected)
    assert summary.rejected == len(expected) - len(complete)  # empty cells (sensor dropouts) are bad rows
    assert summary.delivered == len(complete)
    assert summary.delivery_errors == 0

    messages = read_back(kcat, topic)
    assert len(messages) == len(complete)
    parser = ReadingParser(DEFAULT_SENSORS, limits={})
    partitions: dict[str, set[int]] = {}
    received: dict[str, list[Reading]] = {}
    for partition, key, value in messages:
        assert set(orjson.loads(value)) == {"station_id", "ts", *DEFAULT_SENSORS}  # no label, no event id
        reading = parser.parse(value)
        assert isinstance(reading, Reading), reading
        assert reading.station_id == key
        partitions.setdefault(key, set()).add(partition)
        received.setdefault(key, []).append(reading)
    assert all(len(found) == 1 for found in partitions.values())  # keyed: one partition per station

    for station, rows in complete.groupby("station_id", sort=True):
        readings = received[str(station)]
        assert [r.ts for r in readings] == list(pd.to_datetime(rows["timestamp"], utc=True))
        for sensor in DEFAULT_SENSORS:
            assert [r.values[sensor] for r in readings] == rows[sensor].astype(float).tolist()


def test_a_missing_topic_is_created_with_the_partitions_asked(
    tmp_path: Path, kafka_config: dict[str, str], kcat: Kcat
) -> None:
    from confluent_kafka.admin import AdminClient

    path = tmp_path / "original.csv"
    lines = ["timestamp,flow,pressure,pump_rpm,tank_level,power,label"]
    lines += [f"2025-01-01 00:{m:02d}:00,500.5,70,1800,15,400,0" for m in range(20)]
    path.write_text("\n".join(lines) + "\n")
    topic = f"test-replay-create-{uuid.uuid4().hex[:10]}"
    admin = AdminClient(kafka_config)
    try:
        summary = replay_csv(path, topic, ReplayOptions(partitions=4), kafka_config)
        assert summary.delivered == 20
        metadata = admin.list_topics(topic=topic, timeout=10)
        assert len(metadata.topics[topic].partitions) == 4
        messages = read_back(kcat, topic)
        assert {key for _, key, _ in messages} == {"EST-01"}
        assert orjson.loads(messages[0][2])["ts"] == "2025-01-01T00:00:00Z"
    finally:
        admin.delete_topics([topic])[topic].result(30)


def test_pacing_at_60x_keeps_time(
    simulator_file: Path, fresh_topic: TopicFactory, kafka_config: dict[str, str]
) -> None:
    topic = fresh_topic(partitions=3)
    start = pd.Timestamp("2025-01-01T00:00:00Z").to_pydatetime()
    options = ReplayOptions(
        source=SourceOptions(start=start, end=start + pd.Timedelta(minutes=4, seconds=1)), speed=60.0
    )
    summary = replay_csv(simulator_file, topic, options, kafka_config)
    assert summary.delivered > 0
    # Four minutes of data at 60x: four seconds from the first reading to the last, within 2 %.
    assert summary.send_span_s == pytest.approx(4.0, rel=0.02)


def test_a_frame_replays_and_disorder_is_counted(
    simulator_file: Path, fresh_topic: TopicFactory, kafka_config: dict[str, str], kcat: Kcat
) -> None:
    from datetime import timedelta

    from replay.disorder import DisorderOptions

    topic = fresh_topic(partitions=3)
    frame = pd.read_csv(simulator_file).head(600)
    options = ReplayOptions(
        disorder=DisorderOptions(
            shuffle_within=timedelta(seconds=90), duplicate_rate=0.05, drop_rate=0.05, seed=3
        )
    )
    summary = replay_frame(frame, topic, options, kafka_config)
    assert summary.dropped > 0
    assert summary.duplicated > 0
    assert (
        summary.delivered == summary.queued == 600 - summary.rejected - summary.dropped + summary.duplicated
    )
    assert len(read_back(kcat, topic)) == summary.delivered


@pytest.fixture
def bootstrap_env(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    yield


def test_the_command_prints_a_summary(
    simulator_file: Path, fresh_topic: TopicFactory, bootstrap_env: None, tmp_path: Path
) -> None:
    from centinela.cli import app

    topic = fresh_topic(partitions=3)
    summary_path = tmp_path / "summary.json"
    result = CliRunner().invoke(
        app,
        [
            "replay",
            str(simulator_file),
            "--topic",
            topic,
            "--station",
            "EST-02",
            "--summary-json",
            str(summary_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "sent (delivered)" in result.output
    written = orjson.loads(summary_path.read_bytes())
    assert written["delivery_errors"] == 0
    assert 0 < written["delivered"] <= written["rows_read"] // 3 + 1
    assert written["filtered"] > 0
