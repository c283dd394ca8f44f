"""``centinela demo``: the whole story on one machine, as an operator would run it.

Simulate a few stations with thefts and leaks (or take ``--data``), train a small model (cached),
start the live detector against Kafka, replay the test period as fast as Kafka takes it, and print
the incidents beside the true events, then where the metrics and reports are. Every step runs the
same ``centinela`` subcommand a user would, so the demo also proves the commands fit together.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from detector.errors import CentinelaError

if TYPE_CHECKING:
    from evaluation.scorecard import Scorecard


SENSORS = ("flow", "pressure", "pump_rpm", "tank_level", "power", "suction_pressure", "temperature")
SEGMENT_KINDS = ("tap", "meter_fault")


@dataclass(frozen=True)
class DemoPlan:
    out: Path
    stations: int
    days: int
    seed: int
    data: Path | None
    epochs: int
    metrics_port: int
    sensors: tuple[str, ...]


def _centinela(*args: str) -> list[str]:
    return [sys.executable, "-m", "centinela", *args]


def _run_step(title: str, command: list[str], env: dict[str, str] | None = None) -> None:
    typer.secho(f"\n▶ {title}", bold=True)
    typer.echo("  $ centinela " + " ".join(command[3:]))
    completed = subprocess.run(command, env=env, check=False)
    if completed.returncode != 0:
        raise CentinelaError(f"demo step failed ({title}): exit code {completed.returncode}")


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]


def _simulate(plan: DemoPlan) -> tuple[Path, Path | None, Path | None]:
    """The readings, the events and the line's topology (``--data``: the readings alone)."""
    if plan.data is not None:
        return plan.data, None, None
    folder = plan.out / "sim"
    readings = folder / "readings.csv"
    stamp = folder / ".demo-stamp"
    key = _digest("sim", plan.stations, plan.days, plan.seed)
    cached = readings.exists() and (folder / "topology.toml").exists()
    if cached and stamp.exists() and stamp.read_text() == key:
        typer.secho(f"\n▶ simulated data (cached): {readings}", bold=True)
    else:
        _run_step(
            "simulate a pipeline line with thefts, leaks, sensor faults and normal transients",
            _centinela(
                "simulate",
                "--stations",
                str(plan.stations),
                "--days",
                str(plan.days),
                "--seed",
                str(plan.seed),
                "--out",
                str(folder),
                # A busy line: enough taps and leaks in a short run to show catches and misses.
                "--theft-rate",
                "20",
                "--theft-size",
                "0.01:0.15",
                "--leak-rate",
                "2",
            ),
        )
        stamp.write_text(key)
    return readings, folder / "events.csv", _topology_file(folder)


def _topology_file(folder: Path) -> Path:
    """The simulated line's topology, as ``centinela simulate`` wrote it."""
    path = folder / "topology.toml"
    if not path.exists():
        raise CentinelaError(f"{path} is missing: simulate again (delete {folder / '.demo-stamp'})")
    return path


def _train(plan: DemoPlan, readings: Path, topology: Path | None) -> Path:
    folder = plan.out / "train"
    bundle = folder / "bundle"
    stamp = folder / ".demo-stamp"
    line = topology.read_text() if topology is not None else None
    key = _digest(
        "train", readings.stat().st_size, readings.stat().st_mtime_ns, plan.epochs, plan.sensors, line
    )
    if bundle.exists() and stamp.exists() and stamp.read_text() == key:
        typer.secho(f"\n▶ trained model (cached): {bundle}", bold=True)
        return bundle
    line_args = ["--topology", str(topology)] if topology is not None else []
    _run_step(
        "train a small LSTM autoencoder on the first 60% (calibrate on the next 20%)"
        + (" and calibrate every segment of the line" if topology is not None else ""),
        _centinela(
            "train",
            "--data",
            str(readings),
            "--out",
            str(folder),
            "--sensors",
            ",".join(plan.sensors),
            "--encoder-units",
            "32,16",
            "--decoder-units",
            "16,32",
            "--epochs",
            str(plan.epochs),
            "--seed",
            str(plan.seed),
            *line_args,
        ),
    )
    stamp.write_text(key)
    return bundle


def _test_period_start(report_path: Path) -> datetime:
    """Where the trainer's test split begins (the demo replays only data the model never saw)."""
    report = json.loads(report_path.read_text())
    text = str(report["split_bounds"]["test_start"]).replace("Z", "")
    # numpy prints nanoseconds; datetime takes microseconds.
    return datetime.fromisoformat(text[:26]).replace(tzinfo=UTC)


@contextmanager
def _detector(bundle: Path, env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    typer.secho("\n▶ start the live detector (centinela detect)", bold=True)
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        _centinela("detect", "--bundle", str(bundle)), env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log_file.close()


def _wait_for_metrics(port: int, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CentinelaError(
                f"the detector exited with code {process.returncode}; its log: {log_path}\n"
                + log_path.read_text(errors="replace")[-2000:]
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise CentinelaError(f"the detector's /metrics on port {port} did not answer in {timeout_s:.0f} s")


def _metric_lines(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
    wanted = (
        "centinela_readings_total",
        "centinela_windows_scored_total",
        "centinela_alerts_total",
        "centinela_open_incidents",
        "centinela_dead_letters_total",
        "centinela_model_info",
    )
    # Zero-valued series (every reason and severity is pre-declared) would drown the ones that moved.
    return [line for line in text.splitlines() if line.startswith(wanted) and not line.endswith(" 0.0")]


def _wait_until_consumed(client: dict[str, Any], topic: str, group: str, timeout_s: float) -> None:
    """Block until the detector's group has committed every offset of the readings topic."""
    from kafkakit.read import committed_to_end

    deadline = time.monotonic() + timeout_s
    while not committed_to_end(client, group, topic):  # a transient Kafka error answers "not yet"
        if time.monotonic() >= deadline:
            raise CentinelaError(f"the detector did not consume {topic} within {timeout_s:.0f} s")
        time.sleep(1.0)


@contextmanager
def _removed_after(client: dict[str, str], topics: list[str]) -> Iterator[None]:
    """Delete ``topics`` on the way out (also after a failure or Ctrl-C): a demo leaves no topics."""
    from kafkakit.admin import delete_topics

    try:
        yield
    finally:
        delete_topics(client, topics)
        typer.echo(f"  removed the demo's {len(topics)} topics")


def _print_scorecard(card: Scorecard, *, line: bool = False) -> None:
    """The station incidents against the true events. ``line``: the segment incidents follow (their
    own table), so these tables say they judge the per-station autoencoder alone: a newcomer must
    not read "MISSED" here for a theft the line caught."""
    from rich.console import Console
    from rich.table import Table

    # Wide enough for the tables even when the output goes to a file or a narrow CI log.
    console = Console(width=max(140, Console().width))
    alone = "per-station autoencoder alone (equipment anomalies); the line's segment incidents follow"
    incidents = Table(
        title="Incidents raised by the detector (alerts topic)", caption=alone if line else None
    )
    for column in (
        "station",
        "opened (window end)",
        "closed",
        "peak score / threshold",
        "severity",
        "top sensors",
    ):
        incidents.add_column(column)
    for row in card.incidents:
        incidents.add_row(
            row.station_id,
            row.opened.strftime("%Y-%m-%d %H:%M"),
            row.closed.strftime("%H:%M") if row.closed else "open",
            f"{row.peak_ratio:.1f}×",
            row.severity,
            ", ".join(row.top_sensors),
        )
    console.print(incidents)
    events = Table(
        title="True events in the replayed period"
        + (
            ", judged against the station incidents above only (the line's catches: next tables)"
            if line
            else ""
        )
    )
    for column in ("event", "type", "where", "start", "size", "caught", "time to alarm"):
        events.add_column(column)
    for event in card.events:
        events.add_row(
            event.event_id,
            event.event_type,
            event.where,
            event.start.strftime("%Y-%m-%d %H:%M"),
            event.size,
            "yes" if event.caught else ("n/a" if event.caught is None else "MISSED"),
            f"{event.minutes_to_alarm:.0f} min" if event.minutes_to_alarm is not None else "—",
        )
    console.print(events)
    console.print(
        ("per-station autoencoder alone: " if line else "")
        + f"caught {card.caught} of {card.expected} thefts/leaks, missed {card.missed}, "
        f"false alarms {card.false_alarms}, data gaps {card.data_gaps}"
        + (
            f", median time to alarm {card.median_minutes_to_alarm:.0f} min"
            if card.median_minutes_to_alarm is not None
            else ""
        )
    )


def segment_scorecard(
    alerts: list[dict[str, Any]], events_csv: Path, topology_path: Path, since: datetime
) -> dict[str, Any]:
    """Segment incidents with their estimates beside the true events of the replayed period (the
    sim suite's rules: ``evaluation.suites.sim_segments``)."""
    from detector.topology import load_topology
    from evaluation.suites import sim_segments

    topology = load_topology(topology_path)
    lengths = {segment.segment_id: segment.length_km for segment in topology.segments}
    truths = [t for t in sim_segments.truth_events_from_csv(events_csv.read_text()) if t.end >= since]
    incidents = sim_segments.fold_segment_incidents(alerts)
    joined = sim_segments.join_segments(
        truths, incidents, sim_segments.fold_station_incidents(alerts), lengths
    )
    caught_by = {r["incident_id"]: r for r in joined.events if r["incident_id"]}
    rows = []
    for incident in incidents:
        estimate = incident.estimate or {}
        truth = caught_by.get(incident.incident_id)
        rows.append(
            {
                "kind": incident.kind,
                "segment": incident.segment_id,
                "opened": incident.opened_at,
                "closed": incident.last_window_end if incident.closed else None,
                "sensor": incident.sensor,
                "station_id": incident.station_id,
                "rate_m3h": estimate.get("rate_m3h"),
                "volume_m3": estimate.get("volume_m3"),
                "location_km": estimate.get("location_km"),
                "location_sigma_km": estimate.get("location_sigma_km"),
                "true_event": truth["event_id"] if truth else None,
                "true_location_km": truth["true_location_km"] if truth else None,
                "true_volume_m3": truth["true_volume_m3"] if truth else None,
            }
        )
    return {"incidents": rows, "events": joined.events, "meter_faults": joined.meter_faults}


def _print_segments(segments: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def number(value: Any, digits: int = 1) -> str:
        return "—" if value is None else f"{float(value):.{digits}f}"

    console = Console(width=max(140, Console().width))
    incidents = Table(title="Segment incidents raised by the detector (tap: estimate; meter_fault: sensor)")
    for column in (
        "kind",
        "segment",
        "opened",
        "closed",
        "est. m³/h",
        "est. m³",
        "est. km ± σ",
        "true event",
    ):
        incidents.add_column(column)
    for row in segments["incidents"]:
        where = (
            f"{number(row['location_km'])} ± {number(row['location_sigma_km'])}"
            if row["kind"] == "tap"
            else f"{row['station_id']} {row['sensor'] or ''}"
        )
        true = (
            f"{row['true_event']} (km {number(row['true_location_km'])}, {number(row['true_volume_m3'])} m³)"
            if row["true_event"]
            else ("no theft: false alarm" if row["kind"] == "tap" else "")
        )
        incidents.add_row(
            row["kind"],
            row["segment"],
            row["opened"].strftime("%Y-%m-%d %H:%M"),
            row["closed"].strftime("%H:%M") if row["closed"] else "open",
            number(row["rate_m3h"]),
            number(row["volume_m3"]),
            where,
            true,
        )
    console.print(incidents)
    events = Table(title="True thefts and leaks in the replayed period, by segment")
    for column in (
        "event",
        "type",
        "segment",
        "start",
        "size",
        "true km",
        "true m³",
        "caught",
        "time to alarm",
    ):
        events.add_column(column)
    for event in segments["events"]:
        events.add_row(
            event["event_id"],
            event["event_type"],
            event["segment"],
            event["start"][:16].replace("T", " "),
            f"{100 * event['magnitude']:.1f}% of flow",
            number(event["true_location_km"]),
            number(event["true_volume_m3"]),
            "yes" if event["caught"] else "MISSED",
            f"{event['minutes_to_alarm']:.0f} min" if event["caught"] else "—",
        )
    console.print(events)
    faults = segments["meter_faults"]
    console.print(
        f"segment incidents: {sum(1 for r in segments['incidents'] if r['kind'] == 'tap')} tap, "
        f"{sum(1 for r in segments['incidents'] if r['kind'] == 'meter_fault')} meter_fault; "
        f"flow/level meter faults reported {sum(1 for f in faults if f['reported'])} of {len(faults)}"
    )


def run_demo(plan: DemoPlan) -> Scorecard | None:
    from devtools import broker as local_broker
    from evaluation.scorecard import score_incidents
    from kafkakit.config import kafka_client_config
    from stream.alerts_view import committed_alerts
    from stream.settings import load_settings
    from stream.topics import create_topics, topic_plan

    plan.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Kafka first: a wrong KAFKA_BOOTSTRAP_SERVERS fails in seconds, not after the training.
    with local_broker.provide() as broker:
        readings, events, topology = _simulate(plan)
        bundle = _train(plan, readings, topology)
        test_start = _test_period_start(plan.out / "train" / "report.json")
        # Windows need 30 minutes of history: start the replay one hour before the test period.
        replay_from = test_start - timedelta(hours=1)
        run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        topics = {name: f"centinela.demo.{run_id}.{name}" for name in ("readings", "alerts", "dlq", "scores")}
        group = f"centinela-demo-{run_id}"
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "CENTINELA_GROUP_ID": group,
            "CENTINELA_METRICS_PORT": str(plan.metrics_port),
            "CENTINELA_METRICS_HOST": "127.0.0.1",
            "CENTINELA_IDLE_TIMEOUT_S": "3600",
            **{f"CENTINELA_TOPICS__{name.upper()}": topic for name, topic in topics.items()},
        }
        typer.echo(f"  Kafka at {broker.bootstrap}; topics centinela.demo.{run_id}.*")
        demo_settings = load_settings(kafka={"bootstrap_servers": broker.bootstrap}, topics=topics)
        client = kafka_client_config(demo_settings.kafka)
        # The same plan as `centinela topics create`; the readings topic exists before the detector
        # subscribes, so it starts at offset 0. The demo removes its topics when it is done.
        created = [spec.name for spec in create_topics(client, topic_plan(demo_settings, 6))]
        log_path = plan.out / "detector.log"
        # The detector creates the internal line topic itself (a bundle with a line): remove it too.
        removed = [*created, f"{topics['readings']}.line"]
        with _removed_after(client, removed), _detector(bundle, env, log_path) as process:
            _wait_for_metrics(plan.metrics_port, process, log_path, timeout_s=90)
            _run_step(
                f"replay the test period from {replay_from:%Y-%m-%d %H:%M} UTC as fast as Kafka takes it",
                _centinela(
                    "replay",
                    str(readings),
                    "--topic",
                    topics["readings"],
                    "--start",
                    replay_from.isoformat(),
                    "--sensors",
                    ",".join(plan.sensors),
                ),
                env=env,
            )
            typer.secho("\n▶ wait for the detector to score everything", bold=True)
            _wait_until_consumed(client, topics["readings"], group, timeout_s=300)
            metric_lines = _metric_lines(plan.metrics_port)
            alerts = list(committed_alerts(client, topics["alerts"]))

    (plan.out / "alerts.jsonl").write_text("".join(json.dumps(alert) + "\n" for alert in alerts))
    # Station incidents (the per-station autoencoder) in the scorecard as before; segment incidents
    # (tap, meter_fault) beside the true events of their segment.
    station_alerts = [a for a in alerts if a.get("kind") not in SEGMENT_KINDS]
    card = score_incidents(station_alerts, events, since=test_start) if events is not None else None
    if card is not None:
        _print_scorecard(card, line=topology is not None)
        (plan.out / "scorecard.json").write_text(json.dumps(card.to_json(), indent=2, default=str) + "\n")
    if events is not None and topology is not None:
        segments = segment_scorecard(alerts, events, topology, since=test_start)
        _print_segments(segments)
        (plan.out / "segments.json").write_text(json.dumps(segments, indent=2, default=str) + "\n")
    else:
        typer.echo(f"{len(alerts)} alerts (no events file to compare with, since --data was given)")
    typer.secho("\n▶ metrics the detector exposed (Prometheus format)", bold=True)
    for line in metric_lines:
        typer.echo("  " + line)
    typer.secho(f"\nDone in {time.monotonic() - started:.0f} s. Files:", bold=True)
    typer.echo(f"  alerts            {plan.out / 'alerts.jsonl'}")
    typer.echo(
        f"  training report   {plan.out / 'train' / 'report.md'} (plots in {plan.out / 'train' / 'plots'})"
    )
    typer.echo(f"  model bundle      {bundle}")
    typer.echo(f"  detector log      {plan.out / 'detector.log'}")
    typer.echo("  dashboards        docker compose up (see docs/deploy.md): Grafana on http://localhost:3000")
    return card


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(  # noqa: PLR0917 - a typer command takes its options as parameters
        out: Path = typer.Option(Path("out/demo"), "--out", help="Folder for the data, model and results."),
        stations: int = typer.Option(4, "--stations", min=2, help="Simulated stations on the line."),
        days: int = typer.Option(
            14, "--days", min=5, help="Simulated days (60% train, 20% calibrate, 20% replay)."
        ),
        seed: int = typer.Option(7, "--seed", help="Seed of the simulation and the training."),
        data: Path | None = typer.Option(
            None, "--data", help="Use this labelled CSV instead of simulating (no event table then)."
        ),
        epochs: int = typer.Option(8, "--epochs", min=1, help="Training epochs of the demo's small model."),
        metrics_port: int = typer.Option(9108, "--metrics-port", help="Port of the detector's /metrics."),
    ) -> None:
        """Run the whole story: simulate, train (cached), detect live through Kafka, compare with the truth.

        Uses KAFKA_BOOTSTRAP_SERVERS when set, else the local broker (started if needed).
        Takes a few minutes on 2 cores the first time; later runs reuse the data and the model.
        """
        sensors = SENSORS if data is None else ("flow", "pressure", "pump_rpm", "tank_level", "power")
        run_demo(DemoPlan(out, stations, days, seed, data, epochs, metrics_port, sensors))
