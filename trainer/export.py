"""Writing the trained model as a detector bundle: ONNX serving export, Keras model, manifest, card."""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detector.bundle import write_bundle
from detector.errors import BundleError
from detector.readings import DEFAULT_LIMITS
from trainer.onnx_export import ServingExport, serving_export
from trainer.operating_point import FALSE_ALARM_BUDGET, served_station_thresholds
from trainer.pipeline import RunResult

log = logging.getLogger(__name__)


# Training windows the export is checked on: enough to cover the scaled range, seconds at most.
PARITY_SAMPLE = 256


def serving_onnx(model: Any, windows: Any) -> ServingExport:
    """The serving export, checked against Keras on training windows (the direct graph when it
    matches, else Keras' own export)."""
    try:
        return serving_export(model, windows[:PARITY_SAMPLE])
    except BundleError:
        raise
    except Exception as error:
        raise BundleError(f"exporting the model to ONNX failed: {error}") from error


def model_version(result: RunResult, created_at: datetime) -> str:
    return f"ae-{created_at.strftime('%Y%m%dT%H%M%SZ')}-seed{result.options.fit.seed}"


def training_record(result: RunResult) -> dict[str, Any]:
    """The manifest's ``training`` block: what the model was fitted on and how well it did."""
    ae = result.autoencoder
    return {
        "data": str(result.options.data),
        "mode": ae.mode,
        "options": result.options.to_dict(),
        "split": {name: ws.summary() for name, ws in result.prepared.splits.items()},
        "epochs_run": result.trained.epochs_run,
        "best_epoch": result.trained.best_epoch,
        "final_loss": result.trained.history.get("loss", [float("nan")])[-1],
        "train_seconds": result.seconds.get("train"),
        "test": {k: ae.test[k] for k in ("precision", "recall", "f1", "roc_auc", "average_precision")},
        "aggregation_selection": result.aggregation_selection,
        "operating_point": operating_point_record(result),
    }


def operating_point_record(result: RunResult, accepted_by_flag: bool = False) -> dict[str, Any]:
    """The threshold's check on never-fitted normal windows; ``accepted`` is false when it failed."""
    check = result.operating_point
    if check is None:
        return {"checked": False, "accepted": True}
    return {
        **check.to_dict(),
        "accepted": check.acceptable,
        "accepted_by_flag": accepted_by_flag and not check.acceptable,
        "message": check.message(),
    }


def export_bundle(
    result: RunResult,
    out_dir: Path,
    model_card: str | None = None,
    signing_key: bytes | None = None,
    accepted_by_flag: bool = False,
) -> Path:
    """Write ``out_dir`` (replacing an old bundle there) and return its path; with ``signing_key``
    its manifest is signed (``detector.bundle_signature``).

    A threshold that failed the operating-point check is written with
    ``training.operating_point.accepted = false`` (and ``accepted_by_flag`` when the user accepted it).
    """
    created_at = datetime.now(UTC).replace(microsecond=0)
    ae = result.autoencoder
    with tempfile.TemporaryDirectory(prefix="centinela-export-") as tmp:
        workdir = Path(tmp)
        export = serving_onnx(result.trained.model, result.prepared["train"].x)
        if export.fallback_reason:
            log.warning("serving export: Keras' own ONNX export, because %s", export.fallback_reason)
        keras_file = workdir / "model.keras"
        result.trained.model.save(keras_file)
        calibration = ae.calibration.to_dict()
        calibration["test"] = [c.to_dict() for c in ae.test_strategies]
        calibration["aggregation"] = result.aggregation
        return write_bundle(
            out_dir,
            onnx_model=export.onnx,
            keras_model_file=keras_file,
            model_version=model_version(result, created_at),
            sensors=result.prepared.sensors,
            window=result.prepared.spec,
            scalers=result.prepared.scalers,
            aggregation=result.aggregation,
            threshold=ae.calibration.threshold,
            station_thresholds=served_station_thresholds(
                ae.calibration.threshold,
                ae.calibration.extra.get(FALSE_ALARM_BUDGET, {}).get("per_station_thresholds"),
            ),
            topk=result.options.topk,
            calibration=calibration,
            training={
                **training_record(result),
                "operating_point": operating_point_record(result, accepted_by_flag),
                "serving_export": export.to_dict(),
            },
            # Sanity limits travel with the bundle so the service refuses impossible values.
            limits={name: DEFAULT_LIMITS[name] for name in result.prepared.sensors if name in DEFAULT_LIMITS},
            line=None if result.line is None else (result.line.topology, result.line.calibration),
            model_card=model_card,
            created_at=created_at,
            overwrite=True,
            signing_key=signing_key,
        )
