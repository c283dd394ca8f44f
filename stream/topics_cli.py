"""``centinela topics create|check`` and ``centinela alerts``: the operator's view of the topics."""

from __future__ import annotations

import json
from pathlib import Path

import typer

CONFIG_HELP = "TOML file with settings (environment variables CENTINELA_* win over it), as for detect."


def register(app: typer.Typer) -> None:
    topics = typer.Typer(
        help="Create or check the detector's Kafka topics (names from the detector's settings).",
        no_args_is_help=True,
    )

    @topics.command("create")
    def create(
        config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
        partitions: int = typer.Option(
            6,
            "--partitions",
            min=1,
            help="Partitions of the readings topic (and state/line); outputs get up to 3.",
        ),
        line: bool = typer.Option(
            False, "--line", help="Also the internal line topic (a bundle with a topology)."
        ),
    ) -> None:
        """Create the missing topics, configured per role (docs/service.md); existing ones are left alone."""
        from kafkakit.config import kafka_client_config
        from stream.settings import load_settings
        from stream.topics import check_topics, create_topics, topic_plan

        settings = load_settings(config)
        client = kafka_client_config(settings.kafka)
        plan = topic_plan(settings, partitions, line=line)
        created = {spec.name for spec in create_topics(client, plan)}
        for status in check_topics(client, plan):
            note = "created" if status.spec.name in created else "exists"
            typer.echo(f"{note:8} {status.describe()}")

    @topics.command("check")
    def check(
        config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
        line: bool = typer.Option(False, "--line", help="Also the internal line topic."),
    ) -> None:
        """Say which of the detector's topics exist; exit 1 if any is missing."""
        from kafkakit.config import kafka_client_config
        from stream.settings import load_settings
        from stream.topics import check_topics, topic_plan

        settings = load_settings(config)
        statuses = check_topics(kafka_client_config(settings.kafka), topic_plan(settings, line=line))
        for status in statuses:
            typer.echo(("ok       " if status.exists else "MISSING  ") + status.describe())
        if not all(status.exists for status in statuses):
            typer.echo("create the missing ones with `centinela topics create` (same settings)", err=True)
            raise typer.Exit(1)

    app.add_typer(topics, name="topics")

    @app.command("alerts")
    def alerts(  # noqa: PLR0917 - typer maps each option to a parameter
        config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
        topic: str | None = typer.Option(
            None, "--topic", help="Alerts topic (default: the topics.alerts setting)."
        ),
        follow: bool = typer.Option(False, "--follow", "-f", help="Keep reading new alerts until Ctrl-C."),
        station: list[str] = typer.Option(
            [], "--station", help="Only this station (repeatable; a segment's ends match)."
        ),
        segment: list[str] = typer.Option(
            [], "--segment", help="Only this segment, e.g. EST-01>EST-02 (repeatable)."
        ),
        kind: list[str] = typer.Option(
            [], "--kind", help="Only this kind: anomaly, data_gap, tap, meter_fault... (repeatable)."
        ),
        status: list[str] = typer.Option(
            [], "--status", help="Only this status: open, update, close (repeatable)."
        ),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table."),
    ) -> None:
        """Show the committed alerts (read_committed, from the beginning; joins no group, commits nothing)."""
        import signal
        import threading

        from kafkakit.config import kafka_client_config
        from stream.alerts_view import AlertFilter, alert_row, committed_alerts, format_table
        from stream.settings import load_settings

        settings = load_settings(config)
        wanted = AlertFilter(frozenset(station), frozenset(segment), frozenset(kind), frozenset(status))
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        source = committed_alerts(
            kafka_client_config(settings.kafka), topic or settings.topics.alerts, follow=follow, stop=stop
        )
        if as_json or follow:
            for alert in source:
                if wanted.matches(alert):
                    typer.echo(json.dumps(alert, sort_keys=True) if as_json else "  ".join(alert_row(alert)))
            return
        rows = [alert_row(alert) for alert in source if wanted.matches(alert)]
        for line in format_table(rows):
            typer.echo(line)
        typer.echo(f"{len(rows)} alert(s)", err=True)
