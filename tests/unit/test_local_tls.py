"""The secured local broker's pieces without a broker: TLS material, secret files, the rendered config."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from detector.errors import BrokerError, ConfigError
from devtools import broker as local_broker
from devtools import tls as local_tls
from devtools.broker import BrokerConfig, BrokerStatus

TEMPLATE = (local_broker.DEPLOY_DIR / "server.properties.template").read_text()
SECURE_TEMPLATE = (local_broker.DEPLOY_DIR / "secure.properties.template").read_text()


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    # Later keys win, as in java.util.Properties.
    return {key.strip(): value.strip() for key, value in pairs}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# Tests that take ``material`` are marked slow: issuing it runs openssl for keys and certificates (3 s).
@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> local_tls.TlsMaterial:
    return local_tls.issue(tmp_path_factory.mktemp("home") / "tls")


@pytest.mark.slow
def test_private_keys_and_passwords_are_readable_by_the_owner_only(material: local_tls.TlsMaterial) -> None:
    assert material.complete()
    assert _mode(material.folder) == 0o700
    for secret in (
        material.ca_key,
        material.broker_keystore,
        material.client_key,
        material.client_password_file,
        material.key_password_file,
    ):
        assert _mode(secret) == 0o600, secret
    assert material.client_password() != material.key_password()
    assert len(material.client_password()) >= 32


@pytest.mark.slow
def test_the_broker_certificate_names_localhost_and_chains_to_the_ca(material: local_tls.TlsMaterial) -> None:
    text = material.broker_keystore.read_text()
    assert text.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")  # Kafka's PEM keystore wants it encrypted
    leaf = text[text.index("-----BEGIN CERTIFICATE-----") : text.index("-----END CERTIFICATE-----") + 25]
    leaf_file = material.folder.parent / "leaf.pem"
    leaf_file.write_text(leaf + "\n")
    shown = subprocess.run(
        ["openssl", "x509", "-in", str(leaf_file), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:localhost" in shown and "IP Address:127.0.0.1" in shown
    for cert in (leaf_file, material.client_cert):
        verified = subprocess.run(
            ["openssl", "verify", "-CAfile", str(material.ca_cert), str(cert)],
            capture_output=True,
            check=False,
        )
        assert verified.returncode == 0, verified.stderr


@pytest.mark.slow
def test_issue_keeps_complete_material(material: local_tls.TlsMaterial) -> None:
    before = material.client_password()
    assert local_tls.issue(material.folder).client_password() == before


def test_a_secret_file_is_never_created_readable_by_others(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_text("old")
    target.chmod(0o644)
    local_tls.write_secret(target, "new")
    assert _mode(target) == 0o600
    assert local_tls.read_secret(target) == "new"
    with pytest.raises(ConfigError, match="cannot read the secret file"):
        local_tls.read_secret(tmp_path / "missing")


@pytest.mark.slow
def test_secure_config_adds_sasl_ssl_and_mutual_tls_listeners(
    material: local_tls.TlsMaterial, tmp_path: Path
) -> None:
    config = BrokerConfig(port=19092, secure=True)
    text = local_broker.render_server_properties(
        TEMPLATE, config, tmp_path, secure_template=SECURE_TEMPLATE, tls=material
    )
    props = _properties(text)
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093,"
        "SASL_SSL://127.0.0.1:19094,SSL://127.0.0.1:19095"
    )
    assert "SASL_SSL:SASL_SSL" in props["listener.security.protocol.map"]
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512,PLAIN"
    assert props["listener.name.ssl.ssl.client.auth"] == "required"
    assert props["ssl.keystore.type"] == "PEM"
    assert props["ssl.truststore.location"] == str(material.ca_cert)
    assert material.client_password() in props["listener.name.sasl_ssl.plain.sasl.jaas.config"]
    assert "$" not in "".join(props.values())


def test_plain_config_is_unchanged_by_the_secure_options(tmp_path: Path) -> None:
    plain = local_broker.render_server_properties(TEMPLATE, BrokerConfig(port=19092), tmp_path)
    assert "SASL" not in plain and "ssl." not in plain


def test_a_secure_config_without_material_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TLS material"):
        local_broker.render_server_properties(TEMPLATE, BrokerConfig(secure=True), tmp_path)


@pytest.mark.parametrize(("sasl_port", "ssl_port"), [(9093, None), (None, 9092), (9096, 9096), (70000, None)])
def test_secure_ports_must_be_distinct_and_valid(sasl_port: int | None, ssl_port: int | None) -> None:
    with pytest.raises(ConfigError):
        BrokerConfig(port=9092, secure=True, sasl_port=sasl_port, ssl_port=ssl_port)


@pytest.mark.slow
def test_client_config_points_at_the_secured_listeners(material: local_tls.TlsMaterial) -> None:
    status = BrokerStatus(
        running=True, port=19092, sasl_port=19094, ssl_port=19095, tls_dir=str(material.folder)
    )
    scram = local_broker.secure_client_config(status)
    assert scram["bootstrap.servers"] == "127.0.0.1:19094"
    assert scram["security.protocol"] == "SASL_SSL"
    assert scram["sasl.mechanism"] == "SCRAM-SHA-512"
    assert scram["sasl.password"] == material.client_password()
    assert "ssl.endpoint.identification.algorithm" not in scram  # librdkafka's default: verify the host
    mutual = local_broker.secure_client_config(status, mutual_tls=True)
    assert mutual["security.protocol"] == "SSL"
    assert mutual["ssl.certificate.location"] == str(material.client_cert)
    with pytest.raises(BrokerError, match="--secure"):
        local_broker.secure_client_config(BrokerStatus(running=True, port=19092))


@pytest.mark.slow
def test_status_line_names_secret_files_not_secrets(material: local_tls.TlsMaterial) -> None:
    from devtools import cli as broker_cli

    status = BrokerStatus(
        running=True, pid=1, port=19092, sasl_port=19094, ssl_port=19095, tls_dir=str(material.folder)
    )
    line = broker_cli._describe(status) + "\n" + broker_cli._describe_secure(status)
    assert str(material.client_password_file) in line
    assert material.client_password() not in line
    assert material.key_password() not in line


def test_secure_start_refuses_a_running_broker_without_secured_listeners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = BrokerStatus(running=True, pid=1, port=9092, owner=local_broker.OWNER_CLI)
    monkeypatch.setattr(local_broker, "status", lambda home: plain)
    home = local_broker.BrokerHome(root=tmp_path)
    with pytest.raises(BrokerError, match="stop it before starting one with --secure"):
        local_broker.start(home, BrokerConfig(secure=True))
    assert local_broker.start(home, BrokerConfig()).already_running  # a plain start just reuses it
