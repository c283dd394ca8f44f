"""``centinela broker fetch|start|stop|status``: the local Apache Kafka broker (docs/broker.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from devtools import broker as local_broker
from devtools import tls as local_tls


def _home() -> local_broker.BrokerHome:
    return local_broker.BrokerHome.from_environment()


def _describe(status: local_broker.BrokerStatus) -> str:
    by = (
        "a test session or benchmark"
        if status.owner == local_broker.OWNER_SESSION
        else "centinela broker start"
    )
    return (
        f"Kafka {status.version or '?'} at {status.bootstrap or '?'} "
        f"(pid {status.pid}, controller port {status.controller_port}, started {status.started_at} by {by})"
    )


def _echo_secure(status: local_broker.BrokerStatus) -> None:
    if status.running and status.secure:
        typer.echo(_describe_secure(status))


def _describe_secure(status: local_broker.BrokerStatus) -> str:
    """Where the secured listeners are and where their secrets lie; never the secrets themselves."""
    tls = local_tls.TlsMaterial(Path(str(status.tls_dir)))
    return "\n".join(
        (
            f"  SASL_SSL {status.sasl_bootstrap}: SCRAM-SHA-512 or PLAIN, user {tls.client_user}, "
            f"password in {tls.client_password_file}",
            f"  SSL {status.ssl_bootstrap}: mutual TLS, client certificate {tls.client_cert}, "
            f"key {tls.client_key}",
            f"  CA certificate {tls.ca_cert} (hostname verification: localhost, 127.0.0.1)",
        )
    )


def register(app: typer.Typer) -> None:
    broker = typer.Typer(
        help="The local Apache Kafka broker (KRaft, one node, 127.0.0.1) used by the tests and the demo.",
        no_args_is_help=True,
    )
    app.add_typer(broker, name="broker")

    @broker.command("fetch")
    def fetch() -> None:
        """Resolve the broker's jars with Maven into the cache (once; instant when already there)."""
        home = _home()
        result = local_broker.fetch(home)
        what = "already present" if result.skipped else f"fetched in {result.seconds:.1f} s"
        typer.echo(
            f"Kafka jars {what}: {result.jar_count} jars, {result.size_bytes / 1e6:.1f} MB in {home.libs}"
        )

    @broker.command("start")
    def start(  # noqa: PLR0917 (typer passes every option positionally)
        port: int = typer.Option(
            local_broker.DEFAULT_PORT,
            "--port",
            envvar=local_broker.PORT_ENV,
            help="Client (PLAINTEXT) port; the tests' and benchmarks' broker follows the same variable.",
        ),
        controller_port: int | None = typer.Option(
            None, "--controller-port", help="KRaft controller port; default: port + 1."
        ),
        fresh: bool = typer.Option(False, "--fresh", help="Wipe the broker's data (topics, offsets) first."),
        timeout: float = typer.Option(90.0, "--timeout", help="Seconds to wait until it answers."),
        secure: bool = typer.Option(
            False,
            "--secure",
            help="Also open SASL_SSL (SCRAM-SHA-512, PLAIN) and mutual-TLS listeners with a throwaway CA "
            "and generated passwords (files under the broker home, never printed); docs/security.md.",
        ),
        sasl_port: int | None = typer.Option(None, "--sasl-port", help="SASL_SSL port; default: port + 2."),
        ssl_port: int | None = typer.Option(None, "--ssl-port", help="Mutual-TLS port; default: port + 3."),
    ) -> None:
        """Start the broker in the background; returns once it answers a metadata request."""
        home = _home()
        config = local_broker.BrokerConfig(
            port=port, controller_port=controller_port, secure=secure, sasl_port=sasl_port, ssl_port=ssl_port
        )
        result = local_broker.start(home, config, fresh=fresh, timeout_s=timeout)
        if result.already_running:
            typer.echo(f"already running: {_describe(result.status)}")
            _echo_secure(result.status)
            if result.status.owner == local_broker.OWNER_SESSION:
                typer.echo("(started by a test session or benchmark: it stops when the last of them ends)")
            return
        typer.echo(f"started {_describe(result.status)} in {result.seconds:.1f} s; log {home.log_file}")
        _echo_secure(result.status)

    @broker.command("stop")
    def stop(
        timeout: float = typer.Option(
            30.0, "--timeout", help="Seconds of controlled shutdown before SIGKILL."
        ),
    ) -> None:
        """Stop the broker (controlled shutdown); nothing running is not an error."""
        result = local_broker.stop(_home(), timeout_s=timeout)
        if not result.was_running:
            typer.echo("not running")
            return
        how = "killed after the timeout" if result.killed else "stopped"
        typer.echo(f"{how} (pid {result.pid}) in {result.seconds:.1f} s")

    @broker.command("status")
    def status() -> None:
        """Say whether the broker runs, with its pid, port and version."""
        current = local_broker.status(_home())
        typer.echo(f"running: {_describe(current)}" if current.running else "not running")
        _echo_secure(current)
