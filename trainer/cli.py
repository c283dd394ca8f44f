"""``centinela train``: the offline side, from labelled history CSV to a model bundle and a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from trainer.calibration import STRATEGIES
from trainer.operating_point import DEFAULT_ALARM_BUDGET, DEFAULT_MAX_NORMAL_ALARM_SHARE, FALSE_ALARM_BUDGET

CALIBRATIONS = (FALSE_ALARM_BUDGET, *STRATEGIES)
# Exit status of a run whose threshold alarms on too many never-fitted normal windows.
EXIT_OPERATING_POINT = 3

DEFAULT_DATA = Path("../shared/datasets/rebombeo_huachicoleo.csv")


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(  # noqa: PLR0917 - typer maps each option to a parameter
        data: Path = typer.Option(
            DEFAULT_DATA, "--data", help="Labelled history CSV (timestamp, sensors, label[, station_id])."
        ),
        out: Path = typer.Option(
            Path("out/train"), "--out", help="Folder for report.json, report.md, plots/, bundle/."
        ),
        sensors: str | None = typer.Option(
            None,
            "--sensors",
            help="Comma-separated sensor columns (default: all but timestamp/station_id/label).",
        ),
        train_ratio: float = typer.Option(
            0.6, "--train-ratio", help="Share of the timeline for training (chronological)."
        ),
        val_ratio: float = typer.Option(
            0.2, "--val-ratio", help="Share for validation (threshold, aggregation); the rest is test."
        ),
        train_until: str | None = typer.Option(
            None,
            "--train-until",
            help="Split by date instead of the ratios: train on rows before this ISO date/time "
            "(UTC unless it has an offset); needs --validate-until.",
        ),
        validate_until: str | None = typer.Option(
            None,
            "--validate-until",
            help="With --train-until: validate on rows before this ISO date/time, test on the rest.",
        ),
        window: str = typer.Option(
            "30",
            "--window",
            help="Window length: a duration (30min, 90s, 2h; checked against the sampling period "
            "inferred from the data) or a plain integer, which counts samples (as before: minutes only "
            "at one-minute sampling).",
        ),
        step: str = typer.Option(
            "5", "--step", help="Step between window ends: a duration (5min) or a plain integer of samples."
        ),
        label_column: str = typer.Option(
            "label", "--label-column", help="Column holding the labels (empty cell: unknown)."
        ),
        anomaly_values: str | None = typer.Option(
            None,
            "--anomaly-values",
            help="Comma-separated values of the label column that mean anomaly (e.g. '1,2,5' or "
            "'fault,leak'); any other non-empty value is normal. Default: labels are 0/1.",
        ),
        train_on_unlabelled: bool = typer.Option(
            False,
            "--train-on-unlabelled",
            help="Also train on windows whose label is unknown (empty); they never count in metrics "
            "or thresholds either way.",
        ),
        encoder_units: str = typer.Option(
            "128,64", "--encoder-units", help="Encoder LSTM sizes, e.g. '128,64'."
        ),
        decoder_units: str = typer.Option(
            "64,128", "--decoder-units", help="Decoder LSTM sizes, e.g. '64,128'."
        ),
        dropout: float = typer.Option(0.2, "--dropout"),
        input_noise: float = typer.Option(
            0.5,
            "--input-noise",
            help="Std of Gaussian noise added to training inputs (denoising; 0 turns it off).",
        ),
        learning_rate: float = typer.Option(1e-3, "--learning-rate"),
        batch_size: int = typer.Option(64, "--batch-size"),
        epochs: int = typer.Option(
            40, "--epochs", help="Maximum epochs (early stopping usually ends sooner)."
        ),
        validation_split: float = typer.Option(
            0.1,
            "--validation-split",
            help="Last share of normal training windows held out for early stopping.",
        ),
        patience: int = typer.Option(
            5, "--patience", help="Epochs without improvement before stopping (best weights restored)."
        ),
        seed: int = typer.Option(42, "--seed", help="Same seed, same numbers."),
        aggregation: str = typer.Option(
            "auto", "--aggregation", help="Window score: auto (chosen on validation), mean, max or topk."
        ),
        topk: int = typer.Option(5, "--topk", help="k for the topk aggregation."),
        calibration: str = typer.Option(
            FALSE_ALARM_BUDGET,
            "--calibration",
            help=f"Threshold strategy: {', '.join(CALIBRATIONS)}. The default meets --alarm-budget; "
            "the others are F1-based (validation labels) or percentiles of normal scores.",
        ),
        alarm_budget: float = typer.Option(
            DEFAULT_ALARM_BUDGET,
            "--alarm-budget",
            help="False alarms per station-month allowed on normal validation (and early-stopping "
            "holdout) windows; sets the threshold with --calibration false_alarm_budget.",
        ),
        max_normal_alarm_share: float = typer.Option(
            DEFAULT_MAX_NORMAL_ALARM_SHARE,
            "--max-normal-alarm-share",
            help="Largest share of the test split's normal windows (never fitted) that may alarm at "
            "the chosen threshold; above it the bundle is marked and the run exits 3.",
        ),
        accept_operating_point: bool = typer.Option(
            False,
            "--accept-operating-point",
            help="Exit 0 even when the threshold alarms on more normal test windows than "
            "--max-normal-alarm-share (the bundle stays marked).",
        ),
        use_labels: bool = typer.Option(
            False,
            "--use-labels",
            help="Also learn the labelled anomalies' signature from the training split "
            "(reported as mode 'labels').",
        ),
        advanced_models: bool = typer.Option(
            False, "--advanced-models", help="Also evaluate IsolationForest and LocalOutlierFactor."
        ),
        sweep: bool = typer.Option(
            False,
            "--sweep",
            help="Search configurations first (default grid: 8 trials, about 6-7 minutes on 2 cores), "
            "ranked by validation F1; then train the best.",
        ),
        full_grid: bool = typer.Option(
            False, "--full-grid", help="With --sweep: the original's full grid (2,304 trials, many hours)."
        ),
        window_grid: str | None = typer.Option(None, "--window-grid", help="e.g. '24,36,48'."),
        step_grid: str | None = typer.Option(None, "--step-grid", help="e.g. '1,5,10'."),
        encoder_grid: str | None = typer.Option(None, "--encoder-grid", help="e.g. '128,64;64,32'."),
        decoder_grid: str | None = typer.Option(None, "--decoder-grid", help="e.g. '64,128;32,64'."),
        dropout_grid: str | None = typer.Option(None, "--dropout-grid"),
        lr_grid: str | None = typer.Option(None, "--lr-grid"),
        batch_grid: str | None = typer.Option(None, "--batch-grid"),
        epochs_grid: str | None = typer.Option(None, "--epochs-grid"),
        patience_grid: str | None = typer.Option(None, "--patience-grid"),
        val_split_grid: str | None = typer.Option(None, "--val-split-grid"),
        workers: int = typer.Option(2, "--workers", help="Parallel sweep processes."),
        walk_forward: int = typer.Option(
            0, "--walk-forward", help="Also run K chronological folds and report mean ± sd."
        ),
        topology: Path | None = typer.Option(
            None,
            "--topology",
            help="Line topology (TOML, as `centinela simulate` writes it): also calibrate every segment's "
            "tap test on the training and validation periods and store both in the bundle.",
        ),
        segment_budget: float = typer.Option(
            1.0,
            "--segment-budget",
            help="With --topology: false alarms per segment-month the segment tests are calibrated to.",
        ),
        signing_key_file: Path | None = typer.Option(
            None,
            "--signing-key-file",
            help="Sign the bundle's manifest (HMAC-SHA256) with the key in this file (at least 16 bytes); "
            "`centinela detect` given the same key (bundle_key_file) refuses unsigned or edited bundles.",
        ),
        lang: str = typer.Option("en", "--lang", help="Language of report.md: en or es."),
        plots: bool = typer.Option(True, "--plots/--no-plots", help="Write plots/*.png."),
    ) -> None:
        """Train the LSTM autoencoder on labelled history, calibrate, evaluate, and export a bundle.

        Writes OUT/report.json, OUT/report.md, OUT/plots/*.png, OUT/bundle/ and OUT/MODEL_CARD.md.
        Takes under two minutes on 2 cores for the seed data set with the defaults. With --topology,
        every segment of the line is also calibrated (training and validation periods, labelled rows
        left out) and the bundle, report and model card carry the line.
        """
        import os

        from rich.console import Console

        from detector.errors import ConfigError
        from trainer.model import FitConfig, ModelConfig, parse_units
        from trainer.pipeline import TrainOptions

        # TensorFlow's C++ start-up chatter (CPU features, oneDNN) says nothing a user can act on.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        console = Console(stderr=True)
        if lang not in ("en", "es"):
            raise ConfigError(f"--lang must be en or es, got {lang!r}")
        if calibration not in CALIBRATIONS:
            raise ConfigError(f"--calibration must be one of {', '.join(CALIBRATIONS)}")
        if topology is not None:
            from detector.topology import load_topology

            load_topology(topology)  # a bad topology stops here, before any sweep or training
        signing_key = None
        if signing_key_file is not None:
            from detector.bundle_signature import read_key_file

            signing_key = read_key_file(signing_key_file, "--signing-key-file")  # before hours of training
        options = TrainOptions(
            data=data,
            sensors=tuple(s.strip() for s in sensors.split(",") if s.strip()) if sensors else None,
            window=window,
            step=step,
            train_ratio=train_ratio,
            val_ratio=val_ratio,
            train_until=train_until,
            validate_until=validate_until,
            label_column=label_column,
            anomaly_values=tuple(v.strip() for v in anomaly_values.split(",") if v.strip())
            if anomaly_values
            else None,
            train_on_unlabelled=train_on_unlabelled,
            model=ModelConfig(
                encoder_units=parse_units(encoder_units, "--encoder-units"),
                decoder_units=parse_units(decoder_units, "--decoder-units"),
                dropout=dropout,
                learning_rate=learning_rate,
                input_noise=input_noise,
            ),
            fit=FitConfig(
                batch_size=batch_size,
                epochs=epochs,
                validation_split=validation_split,
                patience=patience,
                seed=seed,
            ),
            aggregation=aggregation,
            topk=topk,
            calibration_method=calibration,
            alarm_budget=alarm_budget,
            max_normal_alarm_share=max_normal_alarm_share,
            use_labels=use_labels,
            advanced_models=advanced_models,
            topology=topology,
            segment_budget=segment_budget,
        )
        sweep_summary: dict[str, Any] | None = None
        if sweep:
            grids = {
                "window": window_grid,
                "step": step_grid,
                "encoder_units": encoder_grid,
                "decoder_units": decoder_grid,
                "dropout": dropout_grid,
                "learning_rate": lr_grid,
                "batch_size": batch_grid,
                "epochs": epochs_grid,
                "patience": patience_grid,
                "validation_split": val_split_grid,
            }
            options, sweep_summary = _run_sweep(
                options, grids=grids, full=full_grid, workers=workers, out=out, console=console
            )
        _run_and_write(
            options,
            out=out,
            lang=lang,
            plots=plots,
            walk_forward=walk_forward,
            sweep_summary=sweep_summary,
            console=console,
            signing_key=signing_key,
            accept_operating_point=accept_operating_point,
        )


def _run_sweep(
    options: Any, *, grids: dict[str, str | None], full: bool, workers: int, out: Path, console: Any
) -> tuple[Any, dict[str, Any]]:
    from dataclasses import replace

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from trainer.sweep import build_grid, parse_grid, run_sweep, trial_options

    overrides = {name: parse_grid(name, text) for name, text in grids.items() if text}
    trials = build_grid(overrides, full=full)
    console.print(f"sweep: {len(trials)} configurations on {workers} worker processes")
    with Progress(
        TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("sweep", total=len(trials))

        def done(finished: int, total: int, record: dict[str, Any]) -> None:
            progress.update(task, completed=finished)

        outcome = run_sweep(options, trials, out / "sweep.jsonl", workers=workers, on_done=done)
    best = outcome.ranked[0]
    _print_sweep(outcome.ranked, console)
    chosen = trial_options(options, best["config"])
    chosen = replace(
        chosen,
        use_labels=options.use_labels,
        advanced_models=options.advanced_models,
        topology=options.topology,
        segment_budget=options.segment_budget,
    )
    summary = {
        "results_file": str(outcome.results_path),
        "trials": len(trials),
        "ran": outcome.ran,
        "resumed": outcome.resumed,
        "ranked_by": "validation f1, then validation average_precision",
        "best": best,
        "top": outcome.ranked[:10],
    }
    return chosen, summary


def _print_sweep(ranked: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table(title="sweep (ranked by validation F1)")
    for column in ("window", "step", "encoder", "decoder", "val F1", "val AP", "test F1", "test AP"):
        table.add_column(column)
    for record in ranked[:10]:
        c, v, t = record["config"], record["validation"], record["test"]
        table.add_row(
            str(c["window"]),
            str(c["step"]),
            str(c["encoder_units"]),
            str(c["decoder_units"]),
            f"{v['f1']:.3f}",
            f"{v['average_precision']:.3f}",
            f"{t['f1']:.3f}",
            f"{t['average_precision']:.3f}",
        )
    console.print(table)


def _run_and_write(
    options: Any,
    *,
    out: Path,
    lang: str,
    plots: bool,
    walk_forward: int,
    sweep_summary: dict[str, Any] | None,
    console: Any,
    signing_key: bytes | None = None,
    accept_operating_point: bool = False,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from trainer.export import export_bundle
    from trainer.pipeline import run_training
    from trainer.reports import build_report, model_card, write_reports

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("epochs", total=options.fit.epochs, loss="")

        def on_epoch(epoch: int, total: int, logs: dict[str, float]) -> None:
            loss = " ".join(f"{k} {v:.4f}" for k, v in logs.items())
            progress.update(task, completed=epoch, loss=loss)

        def on_stage(text: str) -> None:
            progress.console.log(text)

        result = run_training(options, on_epoch=on_epoch, on_stage=on_stage)
        progress.update(task, total=result.trained.epochs_run, completed=result.trained.epochs_run)

    out.mkdir(parents=True, exist_ok=True)
    bundle_dir = out / "bundle"
    report = build_report(result, bundle_path=bundle_dir)
    if sweep_summary is not None:
        report["sweep"] = json.loads(
            json.dumps(sweep_summary, allow_nan=False, default=str).replace("NaN", "null")
        )
    if walk_forward:
        from trainer.walk_forward import render_walk_forward, run_walk_forward

        console.log(f"walk-forward: {walk_forward} folds")
        walk = run_walk_forward(options, walk_forward, on_fold=lambda k, n: console.log(f"fold {k}/{n}"))
        report["walk_forward"] = walk
        console.print(render_walk_forward(walk))
    plot_files: list[str] = []
    if plots:
        from trainer.plots import write_plots

        plot_files = [str(p.relative_to(out)) for p in write_plots(result, out / "plots", lang)]
    card = model_card(report, lang)
    bundle = export_bundle(
        result, bundle_dir, model_card=card, signing_key=signing_key, accepted_by_flag=accept_operating_point
    )
    (out / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    json_path, md_path = write_reports(report, out, lang=lang, plots=plot_files)

    table = Table(
        title=f"test split ({report['split']['test']['windows']} windows), threshold from validation"
    )
    table.add_column("model", no_wrap=True)
    for column in ("mode", "precision", "recall", "F1", "ROC-AUC", "AP"):
        table.add_column(column)
    for name, model in report["models"].items():
        table.add_row(
            name,
            model["mode"],
            *(
                f"{model[k]:.3f}" if model[k] is not None else "—"
                for k in ("precision", "recall", "f1", "roc_auc", "average_precision")
            ),
        )
    Console = type(console)
    stdout = Console()
    stdout.print(table)
    stdout.print(
        f"aggregation {result.aggregation}; trained {result.trained.epochs_run} epochs "
        f"in {result.seconds['train']:.1f} s"
    )
    stdout.print(f"report: {json_path} and {md_path}")
    stdout.print(f"bundle written to {bundle}")
    check = result.operating_point
    if check is not None:
        stdout.print(check.message(), style=None if check.acceptable else "bold red")
        if not check.acceptable:
            if accept_operating_point:
                stdout.print("accepted by --accept-operating-point; the bundle stays marked")
            else:
                stdout.print(
                    "refusing to exit 0: choose another threshold (--alarm-budget, --calibration), "
                    "retrain on representative data, or pass --accept-operating-point"
                )
                raise typer.Exit(EXIT_OPERATING_POINT)
