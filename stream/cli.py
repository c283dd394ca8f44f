"""``centinela detect``: the live detector service."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("detect")
    def detect(
        config: Path | None = typer.Option(
            None, "--config", help="TOML file with settings (environment variables CENTINELA_* win over it)."
        ),
        bundle: Path | None = typer.Option(
            None, "--bundle", help="Model bundle folder (overrides bundle_path)."
        ),
        topology: Path | None = typer.Option(
            None,
            "--topology",
            help="Topology file (TOML) the bundle's line must equal; refused at start, naming the first "
            "field that differs, or when the bundle has no line (overrides the topology setting).",
        ),
        create_topics: bool = typer.Option(
            False,
            "--create-topics",
            help="Create missing topics at start (as `centinela topics create`) instead of stopping.",
        ),
        check: bool = typer.Option(
            False, "--check", help="Validate the settings and the bundle, print the settings, and exit."
        ),
    ) -> None:
        """Score live readings from Kafka and publish incidents, data gaps and per-window scores.

        Windows are cut per station in event time and each poll's windows are scored in one batch.
        Alerts are published exactly once, in one transaction with the consumed offsets.
        SIGHUP reloads the model; SIGTERM or Ctrl-C finish the batch in hand, commit and exit.
        Metrics on /metrics; every setting is described in docs/service.md.
        """
        import json

        from prometheus_client import disable_created_metrics

        from stream.runner import load_serving_bundle, run_detector
        from stream.settings import describe, load_settings

        overrides: dict[str, Path | bool] = {} if bundle is None else {"bundle_path": bundle}
        if topology is not None:
            overrides["topology"] = topology
        if create_topics:
            overrides["create_topics"] = True
        settings = load_settings(config, **overrides)
        if check:
            served = load_serving_bundle(settings)
            typer.echo(json.dumps(describe(settings), indent=2))
            typer.echo(f"bundle {served.path}: model {served.model_version}, threshold {served.threshold:g}")
            return
        disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series only add noise to every scrape
        run_detector(settings)
