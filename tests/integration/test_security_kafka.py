"""The local broker's secured listeners (``centinela broker start --secure``) against real clients.

Replay and the detector work with SCRAM-SHA-512 over TLS; PLAIN and mutual TLS work; a client
without credentials is refused; a wrong password and an untrusted CA fail at start within seconds
with a message that says so (``kafkakit.check``) and never show the password.

The module starts its own secured broker (its own home next to the shared one, reusing its jars,
ports 100 above the shared broker's) and stops it at the end unless someone else holds it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from detector.errors import BrokerError
from devtools import broker as local_broker
from devtools import tls as local_tls
from devtools.broker import BrokerConfig, BrokerHome, BrokerStatus
from devtools.stand_ins import build_linear_bundle
from stream.runner import run_detector
from stream.settings import Settings
from tests.integration.kafka_helpers import TopicFactory, unique_name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DATASET = Path("/work/shared/datasets/rebombeo_huachicoleo.csv")
PORT_OFFSET = 100
# How long a refused login or an untrusted certificate may take to be reported at start.
FAIL_FAST_S = 10.0


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerStatus]:
    shared = BrokerHome.from_environment()
    local_broker.fetch(shared)
    home = BrokerHome(root=shared.root.parent / f"{shared.root.name}-secure", shared_libs=shared.libs)
    config = BrokerConfig(port=BrokerConfig.from_environment().port + PORT_OFFSET, secure=True)
    lease = local_broker.acquire(home, config, timeout_s=120)
    try:
        yield lease.start.status
    finally:
        local_broker.release(lease)


@pytest.fixture
def topics(secure: BrokerStatus) -> Iterator[TopicFactory]:
    # Topics are made over the loopback PLAINTEXT listener: the tests are about the clients.
    factory = TopicFactory(str(secure.bootstrap), prefix="secure")
    try:
        yield factory
    finally:
        factory.cleanup()


def _settings_fields(secure: BrokerStatus, **kafka: Any) -> dict[str, Any]:
    tls = local_tls.TlsMaterial(Path(str(secure.tls_dir)))
    fields: dict[str, Any] = {
        "bootstrap_servers": secure.sasl_bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": tls.client_user,
        "sasl_password": tls.client_password(),
        "ssl_ca_location": str(tls.ca_cert),
    }
    fields.update(kafka)
    return fields


def _env(secure: BrokerStatus, **kafka: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CENTINELA_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    for key, value in _settings_fields(secure, **kafka).items():
        if value is not None:
            env[f"CENTINELA_KAFKA__{key.upper()}"] = str(value)
    return env


def _metadata(config: dict[str, Any], timeout_s: float = 3.0) -> int:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**config, "log_level": 0})
    return len(admin.list_topics(timeout=timeout_s).brokers)


def _read_all(
    config: dict[str, Any], topic: str, expect_at_least: int, timeout_s: float = 60.0
) -> list[bytes]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {**config, "group.id": unique_name("secure-reader"), "enable.auto.commit": False, "log_level": 0}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expect_at_least and time.monotonic() < deadline:
            out += [m.value() or b"" for m in consumer.consume(1000, 0.5) if m.error() is None]
        return out
    finally:
        consumer.close()


def _replay(
    csv: Path, topic: str, env: dict[str, str], timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "centinela", "replay", str(csv), "--topic", topic, "--speed", "max",
         "--station-id", "EST-01", "--no-progress"],
        env=env, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def four_hours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = DATASET.read_text(encoding="utf-8").splitlines()[: 1 + 240]
    path = tmp_path_factory.mktemp("csv") / "four_hours.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- what works ------------------------------------------------------------------------------------
def test_replay_and_the_detector_work_with_scram_over_tls(
    secure: BrokerStatus, topics: TopicFactory, four_hours: Path, tmp_path: Path
) -> None:
    readings, alerts, dlq, scores = (topics(1, prefix=p) for p in ("readings", "alerts", "dlq", "scores"))
    done = _replay(four_hours, readings, _env(secure))
    assert done.returncode == 0, done.stderr[-2000:]

    settings = Settings.model_validate(
        dict(
            kafka=_settings_fields(secure),
            topics={"readings": readings, "alerts": alerts, "dlq": dlq, "scores": scores},
            group_id=unique_name("secure-detector"),
            instance_id=unique_name("secure"),
            bundle_path=build_linear_bundle(tmp_path / "bundle", factor=0.5, threshold=1.0),
            metrics_enabled=False,
            idle_timeout_s=1e6,
            transaction_timeout_s=10,
        )
    )
    stop = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            run_detector(settings, stop=stop, registry=CollectorRegistry())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=serve, name="secure-detector", daemon=True)
    thread.start()
    try:
        # 240 one-minute readings: the 30-minute windows every 5 minutes close about 40 times.
        records = _read_all(local_broker.secure_client_config(secure) | {"isolation.level": "read_committed"},
                            scores, expect_at_least=30)  # fmt: skip
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    assert len(records) >= 30
    assert all(b'"station_id":"EST-01"' in record for record in records)


def test_plain_and_mutual_tls_reach_the_broker(secure: BrokerStatus) -> None:
    assert _metadata(local_broker.secure_client_config(secure, mechanism="PLAIN")) == 1
    assert _metadata(local_broker.secure_client_config(secure, mutual_tls=True)) == 1


# -- what is refused -------------------------------------------------------------------------------
def test_a_client_without_credentials_is_refused(secure: BrokerStatus, topics: TopicFactory) -> None:
    from confluent_kafka import KafkaException, Producer

    topic = topics(1, prefix="nocreds")
    scram = local_broker.secure_client_config(secure)
    mutual = local_broker.secure_client_config(secure, mutual_tls=True)
    without = {
        "plaintext to SASL_SSL": {"bootstrap.servers": scram["bootstrap.servers"]},
        "TLS without SASL": {
            "bootstrap.servers": scram["bootstrap.servers"],
            "security.protocol": "SSL",
            "ssl.ca.location": scram["ssl.ca.location"],
        },
        "mutual TLS without a certificate": {
            k: v for k, v in mutual.items() if k not in ("ssl.certificate.location", "ssl.key.location")
        },
    }
    for what, config in without.items():
        with pytest.raises(KafkaException):
            _metadata(config, timeout_s=2.0)
        reports: list[Any] = []

        def report(error: Any, _message: Any, out: list[Any] = reports) -> None:
            out.append(error)

        producer = Producer({**config, "log_level": 0, "message.timeout.ms": 2000})
        producer.produce(topic, b"x", on_delivery=report)
        producer.flush(5)
        assert len(reports) == 1 and reports[0] is not None, f"{what}: a message was delivered"
    assert _read_all(scram, topic, expect_at_least=1, timeout_s=2) == []


def test_a_wrong_password_fails_the_detector_at_start_quickly(secure: BrokerStatus, tmp_path: Path) -> None:
    wrong = "not-" + local_tls.new_password()
    settings = Settings.model_validate(
        dict(
            kafka=_settings_fields(secure, sasl_password=wrong),
            bundle_path=build_linear_bundle(tmp_path / "bundle"),
            metrics_enabled=False,
            instance_id="wrong-password",
        )
    )
    began = time.monotonic()
    with pytest.raises(BrokerError, match="refused the credentials of user 'centinela'") as raised:
        run_detector(settings, stop=threading.Event(), registry=CollectorRegistry())
    assert time.monotonic() - began < FAIL_FAST_S
    assert wrong not in str(raised.value)


def test_a_wrong_password_fails_replay_at_start_quickly(
    secure: BrokerStatus, topics: TopicFactory, four_hours: Path
) -> None:
    topic = topics(1, prefix="wrongpw")
    wrong = "not-" + local_tls.new_password()
    began = time.monotonic()
    done = _replay(four_hours, topic, _env(secure, sasl_password=wrong), timeout_s=60)
    assert time.monotonic() - began < FAIL_FAST_S + 10  # plus the interpreter's start
    assert done.returncode != 0
    assert "refused the credentials" in done.stderr
    assert wrong not in done.stderr + done.stdout


def test_an_untrusted_certificate_fails_the_detector_and_replay_at_start(
    secure: BrokerStatus, topics: TopicFactory, four_hours: Path, tmp_path: Path
) -> None:
    stranger = str(local_tls.issue_ca(tmp_path / "other-ca", name="someone-else"))
    settings = Settings.model_validate(
        dict(
            kafka=_settings_fields(secure, ssl_ca_location=stranger),
            bundle_path=build_linear_bundle(tmp_path / "bundle"),
            metrics_enabled=False,
            instance_id="untrusted",
        )
    )
    began = time.monotonic()
    with pytest.raises(BrokerError, match=r"TLS handshake failed.*certificate verify failed"):
        run_detector(settings, stop=threading.Event(), registry=CollectorRegistry())
    assert time.monotonic() - began < FAIL_FAST_S

    done = _replay(
        four_hours, topics(1, prefix="untrusted"), _env(secure, ssl_ca_location=stranger), timeout_s=60
    )
    assert done.returncode != 0
    assert "certificate verify failed" in done.stderr


def test_replay_reads_the_password_from_a_file(
    secure: BrokerStatus, topics: TopicFactory, four_hours: Path
) -> None:
    tls = local_tls.TlsMaterial(Path(str(secure.tls_dir)))
    topic = topics(1, prefix="pwfile")
    env = _env(secure)
    del env["CENTINELA_KAFKA__SASL_PASSWORD"]
    env["CENTINELA_KAFKA__SASL_PASSWORD_FILE"] = str(tls.client_password_file)
    done = _replay(four_hours, topic, env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(_read_all(local_broker.secure_client_config(secure), topic, expect_at_least=240)) == 240


def test_the_secure_broker_status_names_no_secret(secure: BrokerStatus) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "centinela", "broker", "status"],
        env={**os.environ, "CENTINELA_KAFKA_HOME": str(Path(str(secure.tls_dir)).parent)},
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    tls = local_tls.TlsMaterial(Path(str(secure.tls_dir)))
    assert "SASL_SSL" in done.stdout, done.stdout + done.stderr
    assert tls.client_password() not in done.stdout + done.stderr


def test_starting_again_with_secure_reuses_the_secured_broker(secure: BrokerStatus) -> None:
    home = BrokerHome(root=Path(str(secure.tls_dir)).parent)
    result = local_broker.start(home, BrokerConfig(port=int(str(secure.port)), secure=True))
    assert result.already_running and result.status.secure
    with pytest.raises(BrokerError):
        local_broker.secure_client_config(BrokerStatus(running=True, port=1))
