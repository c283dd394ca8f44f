from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from detector.errors import ConfigError
from devtools import broker as local_broker
from devtools.broker import BrokerConfig, BrokerHome

TEMPLATE = (local_broker.DEPLOY_DIR / "server.properties.template").read_text()


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_cluster_id_is_16_random_bytes_in_url_safe_base64() -> None:
    ids = {local_broker.new_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # kafka-storage would read "-t -Abc..." as a missing value: format fails (1 start in 64).
    dash_first = uuid.UUID(bytes=base64.urlsafe_b64decode("-" + "A" * 21 + "=="))
    draws = iter([dash_first, uuid.UUID(int=1)])
    monkeypatch.setattr(local_broker.uuid, "uuid4", lambda: next(draws))
    assert not local_broker.new_cluster_id().startswith("-")
    monkeypatch.undo()
    assert not any(local_broker.new_cluster_id().startswith("-") for _ in range(2000))


def test_rendered_config_is_one_loopback_kraft_node_with_replication_one(tmp_path: Path) -> None:
    props = _properties(local_broker.render_server_properties(TEMPLATE, BrokerConfig(port=19092), tmp_path))

    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(tmp_path)
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "offsets.topic.num.partitions",
        "transaction.state.log.num.partitions",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["group.min.session.timeout.ms"] == "1000"
    assert "$" not in "".join(props.values())


def test_controller_port_can_be_chosen(tmp_path: Path) -> None:
    config = BrokerConfig(port=9092, controller_port=29093)
    props = _properties(local_broker.render_server_properties(TEMPLATE, config, tmp_path))
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"


@pytest.mark.parametrize(("port", "controller_port"), [(0, None), (70000, None), (65535, None), (9092, 9092)])
def test_impossible_ports_are_refused(port: int, controller_port: int | None) -> None:
    with pytest.raises(ConfigError):
        BrokerConfig(port=port, controller_port=controller_port)


def test_a_template_with_an_unknown_placeholder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="placeholder"):
        local_broker.render_server_properties("x=${nope}\n", BrokerConfig(), tmp_path)


def test_cluster_id_is_read_back_from_a_formatted_log_dir(tmp_path: Path) -> None:
    assert local_broker.read_cluster_id(tmp_path) is None
    (tmp_path / "meta.properties").write_text("#\nnode.id=1\ncluster.id=LMUHD-w-RbKBuVey1eOBeA\nversion=1\n")
    assert local_broker.read_cluster_id(tmp_path) == "LMUHD-w-RbKBuVey1eOBeA"


def test_version_comes_from_the_broker_jar(tmp_path: Path) -> None:
    assert local_broker.kafka_version(tmp_path) is None
    for name in ("kafka-clients-4.3.1.jar", "kafka_2.13-4.3.1.jar", "scala-library-2.13.18.jar"):
        (tmp_path / name).write_bytes(b"")
    assert local_broker.kafka_version(tmp_path) == "4.3.1"


def test_home_defaults_to_the_repository_cache_and_follows_the_variable(tmp_path: Path) -> None:
    assert BrokerHome.from_environment({}).root == local_broker.REPO_ROOT / ".cache" / "kafka"
    home = BrokerHome.from_environment({"CENTINELA_KAFKA_HOME": str(tmp_path / "k")})
    assert home.root == tmp_path / "k"
    assert home.libs == tmp_path / "k" / "libs"


def _home_with_jars(tmp_path: Path) -> BrokerHome:
    deploy = tmp_path / "deploy"
    shutil.copytree(local_broker.DEPLOY_DIR, deploy)
    home = BrokerHome(root=tmp_path / "home", deploy_dir=deploy)
    home.libs.mkdir(parents=True)
    (home.libs / "kafka_2.13-4.3.1.jar").write_bytes(b"x" * 10)
    home.stamp.write_text(local_broker.pom_digest(home.pom) + "\n")
    return home


def test_fetch_is_skipped_while_the_pom_is_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _home_with_jars(tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: pytest.fail(f"looked for {name}: Maven would run"))

    result = local_broker.fetch(home)

    assert result.skipped
    assert (result.jar_count, result.size_bytes) == (1, 10)


def test_a_changed_pom_means_the_jars_must_be_fetched_again(tmp_path: Path) -> None:
    home = _home_with_jars(tmp_path)
    assert local_broker.jars_ready(home)
    home.pom.write_text(home.pom.read_text().replace("4.3.1", "4.4.0"))
    assert not local_broker.jars_ready(home)


def test_fetch_without_maven_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _home_with_jars(tmp_path)
    home.stamp.unlink()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="Maven"):
        local_broker.fetch(home)


def test_a_stale_pid_file_is_not_a_running_broker(tmp_path: Path) -> None:
    home = _home_with_jars(tmp_path)
    # Our own pid is alive, but it is not this home's broker: it must not be reported (or killed).
    home.pid_file.write_text(f"{os.getpid()}\n")
    assert local_broker.status(home).running is False

    result = local_broker.stop(home, timeout_s=1)

    assert result.was_running is False
    assert not home.pid_file.exists()


def test_dead_sessions_leases_are_pruned(tmp_path: Path) -> None:
    home = _home_with_jars(tmp_path)
    home.leases.mkdir()
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    (home.leases / "dead").write_text(finished.stdout)
    (home.leases / "alive").write_text(f"{os.getpid()}\n")

    assert local_broker._live_leases(home) == 1
    assert sorted(p.name for p in home.leases.iterdir()) == ["alive"]


@pytest.mark.parametrize(
    ("bootstrap", "expected"),
    [
        ("127.0.0.1:9092", [("127.0.0.1", 9092)]),
        ("a:1, b:2", [("a", 1), ("b", 2)]),
        ("PLAINTEXT://kafka:9092", [("kafka", 9092)]),
        ("[::1]:9092", [("::1", 9092)]),
        ("nonsense", []),
    ],
)
def test_bootstrap_strings_are_split_into_addresses(bootstrap: str, expected: list[tuple[str, int]]) -> None:
    assert local_broker.bootstrap_addresses(bootstrap) == expected


def test_the_port_follows_the_variable() -> None:
    assert BrokerConfig.from_environment({}).port == 9092
    config = BrokerConfig.from_environment({"CENTINELA_KAFKA_PORT": "29092"})
    assert (config.port, config.effective_controller_port) == (29092, 29093)
    with pytest.raises(ConfigError, match="CENTINELA_KAFKA_PORT"):
        BrokerConfig.from_environment({"CENTINELA_KAFKA_PORT": "ninety"})


def test_the_last_lease_of_a_session_started_broker_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home_with_jars(tmp_path)
    running = local_broker.BrokerStatus(running=True, pid=1, port=9092, owner=local_broker.OWNER_SESSION)
    started = local_broker.StartResult(running, already_running=False, seconds=1.0)
    stops: list[str] = []
    monkeypatch.setattr(local_broker, "_start_locked", lambda *a, **k: started)
    monkeypatch.setattr(local_broker, "status", lambda h: running)
    monkeypatch.setattr(local_broker, "_stop_locked", lambda h, t, b: stops.append("stop"))

    first = local_broker.acquire(home, BrokerConfig())
    second = local_broker.acquire(home, BrokerConfig())
    assert first.bootstrap == "127.0.0.1:9092"

    local_broker.release(first)
    assert stops == []
    local_broker.release(second)
    assert stops == ["stop"]


def test_a_broker_started_by_hand_is_never_stopped_by_a_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home_with_jars(tmp_path)
    running = local_broker.BrokerStatus(running=True, pid=1, port=9092, owner=local_broker.OWNER_CLI)
    monkeypatch.setattr(
        local_broker, "_start_locked", lambda *a, **k: local_broker.StartResult(running, True, 0.0)
    )
    monkeypatch.setattr(local_broker, "status", lambda h: running)
    monkeypatch.setattr(local_broker, "_stop_locked", lambda h, t, b: pytest.fail("stopped it"))

    local_broker.release(local_broker.acquire(home, BrokerConfig()))
