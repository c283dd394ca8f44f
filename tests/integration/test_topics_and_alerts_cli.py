"""``centinela topics create|check``, the detector's start-up topic check and ``centinela alerts``,
as an operator runs them, against the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.stand_ins import build_linear_bundle
from kafkakit.admin import delete_topics
from tests.integration.kafka_helpers import unique_name
from tests.integration.local_ports import free_port
from tests.integration.polling import wait_for

pytestmark = pytest.mark.integration

ROLES = ("readings", "alerts", "dlq", "scores", "state")


@pytest.fixture
def names(kafka_bootstrap: str) -> Iterator[dict[str, str]]:
    """Fresh topic names (not created); whatever the test made of them is deleted afterwards."""
    made = {role: unique_name(f"ops-{role}") for role in ROLES}
    yield made
    delete_topics({"bootstrap.servers": kafka_bootstrap}, [*made.values(), f"{made['readings']}.line"])


def _env(bootstrap: str, names: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CENTINELA_")}
    return env | {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        **{f"CENTINELA_TOPICS__{role.upper()}": name for role, name in names.items()},
    }


def _centinela(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "centinela", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_check_names_the_missing_topics_and_create_makes_them_as_planned(
    kafka_bootstrap: str, names: dict[str, str]
) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    env = _env(kafka_bootstrap, names)
    missing = _centinela(env, "topics", "check")
    assert missing.returncode == 1
    assert f"MISSING  {names['alerts']} (topics.alerts): missing" in missing.stdout

    created = _centinela(env, "topics", "create", "--partitions", "4")
    assert created.returncode == 0, created.stderr
    assert created.stdout.count("created ") == len(ROLES)
    assert f"{names['readings']} (topics.readings): 4 partition(s)" in created.stdout

    again = _centinela(env, "topics", "create")
    assert again.returncode == 0 and "created " not in again.stdout  # existing topics left alone
    assert _centinela(env, "topics", "check").returncode == 0

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, names["state"])
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["cleanup.policy"].value == "compact"


def test_detect_stops_within_seconds_naming_missing_topics_or_creates_them_when_told(
    kafka_bootstrap: str, names: dict[str, str], tmp_path: Path
) -> None:
    bundle = build_linear_bundle(tmp_path / "bundle")
    member = unique_name("ops-detector")  # its own group and transactional id: nothing to fence or wait out
    env = _env(kafka_bootstrap, names) | {
        "CENTINELA_GROUP_ID": member,
        "CENTINELA_INSTANCE_ID": member,
        "CENTINELA_BUNDLE_PATH": str(bundle),
        "CENTINELA_METRICS_ENABLED": "false",
        "CENTINELA_IDLE_TIMEOUT_S": "1000000",
    }
    started = time.monotonic()
    refused = _centinela(env, "detect", timeout=60)
    assert refused.returncode == 2
    assert time.monotonic() - started < 60  # the start, the bundle, one metadata request; not minutes
    assert "missing Kafka topic(s)" in refused.stderr
    assert f"{names['alerts']} (topics.alerts)" in refused.stderr
    assert "--create-topics" in refused.stderr

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "centinela", "detect", "--create-topics"],
        env=env
        | {
            "CENTINELA_METRICS_ENABLED": "true",
            "CENTINELA_METRICS_HOST": "127.0.0.1",
            "CENTINELA_METRICS_PORT": str(port),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if _centinela(env, "topics", "check").returncode == 0:
                break
            time.sleep(1)
        assert _centinela(env, "topics", "check").returncode == 0
        try:
            wait_for(lambda: _status(port, "/readyz") == 200, 120, "the detector to be ready")
        except AssertionError:
            answer = _body(port, "/readyz")
            process.terminate()
            log = process.communicate(timeout=60)[1][-3000:]
            raise AssertionError(f"not ready: {answer}; log: {log}") from None
        assert _status(port, "/healthz") == 200
        assert process.poll() is None  # running, not stopped
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]


def _status(port: int, path: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0  # not listening yet


def _body(port: int, path: str) -> str:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.read().decode()
    except OSError as error:
        return f"no answer ({error})"


def test_alerts_shows_committed_alerts_only_filtered(kafka_bootstrap: str, names: dict[str, str]) -> None:
    from confluent_kafka import Producer

    env = _env(kafka_bootstrap, names)
    assert _centinela(env, "topics", "create", "--partitions", "1").returncode == 0
    tap = {
        "kind": "tap",
        "status": "open",
        "station_id": "EST-01",
        "segment": {"segment_id": "EST-01>EST-02", "upstream": "EST-01", "downstream": "EST-02"},
        "estimate": {"rate_m3h": 20.0, "volume_m3": 3.5, "location_km": 12.0, "location_sigma_km": 3.0},
        "score": 6.0,
        "incident_id": "tap-1",
    }
    gap = {"kind": "data_gap", "status": "open", "station_id": "EST-07", "incident_id": "gap-1"}
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": unique_name("alerts-cli")})
    producer.init_transactions(30)
    for alerts, commit in (([tap, gap], True), ([{**gap, "incident_id": "aborted"}], False)):
        producer.begin_transaction()
        for alert in alerts:
            producer.produce(names["alerts"], json.dumps(alert).encode(), key=alert["incident_id"].encode())
        (producer.commit_transaction if commit else producer.abort_transaction)(30)

    everything = _centinela(env, "alerts", "--json")
    assert everything.returncode == 0, everything.stderr
    shown = [json.loads(line) for line in everything.stdout.splitlines()]
    assert [alert["incident_id"] for alert in shown] == ["tap-1", "gap-1"]  # never the aborted one

    table = _centinela(env, "alerts", "--station", "EST-02")
    assert table.returncode == 0, table.stderr
    assert "EST-01>EST-02" in table.stdout and "20.0 m3/h, 3.5 m3, km 12.0±3.0" in table.stdout
    assert "EST-07" not in table.stdout
    assert "1 alert(s)" in table.stderr
