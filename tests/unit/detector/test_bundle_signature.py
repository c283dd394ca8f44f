"""Signed bundles and plausibility checks (issue 22 item 5): an edited manifest is never served."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from detector.bundle import MANIFEST, load_bundle, sign_bundle, single_scaler, write_bundle
from detector.bundle_signature import SIGNATURE, key_from_text, key_id
from detector.errors import BundleError, ConfigError
from detector.readings import DEFAULT_LIMITS, DEFAULT_SENSORS, SensorLimits
from detector.testing import SEED_MEAN, SEED_SCALE
from detector.windows import WindowSpec
from devtools.stand_ins import build_linear_bundle, linear_onnx_model

KEY = b"k" * 32
OTHER = b"o" * 32


def edit_manifest(root: Path, **changes: object) -> None:
    manifest = orjson.loads((root / MANIFEST).read_bytes())
    manifest.update(changes)
    (root / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))


def calibrated_bundle(
    root: Path, threshold: float = 0.59, limits: dict[str, SensorLimits] | None = None
) -> Path:
    """A bundle as the trainer writes one: the calibration records its thresholds."""
    spec = WindowSpec()
    calibration = {
        "method": "best_f1",
        "threshold": 0.5928,
        "strategies": [{"strategy": "p99", "threshold": 0.71}, {"strategy": "iqr", "threshold": 0.44}],
    }
    return write_bundle(
        root,
        onnx_model=linear_onnx_model(spec.samples_per_window, len(DEFAULT_SENSORS), 0.5),
        keras_model_file=None,
        model_version="trained-1",
        sensors=DEFAULT_SENSORS,
        window=spec,
        scalers=single_scaler(SEED_MEAN, SEED_SCALE),
        aggregation="mean",
        threshold=threshold,
        calibration=calibration,
        limits=limits or {name: DEFAULT_LIMITS[name] for name in DEFAULT_SENSORS},
        signing_key=KEY,
    )


def test_a_signed_bundle_loads_with_its_key_and_without_one(tmp_path: Path) -> None:
    root = calibrated_bundle(tmp_path / "b")
    assert (root / SIGNATURE).exists()
    assert load_bundle(root, verify_key=KEY).model_version == "trained-1"
    assert load_bundle(root).model_version == "trained-1"


def test_an_unsigned_bundle_is_refused_when_a_key_is_set(tmp_path: Path) -> None:
    root = build_linear_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match=r"unsigned \(no manifest.sig\)"):
        load_bundle(root, verify_key=KEY)
    sign_bundle(root, KEY)
    assert load_bundle(root, verify_key=KEY)


def test_an_edited_manifest_is_refused_naming_the_signature(tmp_path: Path) -> None:
    root = calibrated_bundle(tmp_path / "b")
    edit_manifest(root, threshold=0.6)  # plausible, but not what was signed
    with pytest.raises(BundleError, match="the manifest was edited after it was signed"):
        load_bundle(root, verify_key=KEY)


def test_a_bundle_signed_with_another_key_is_refused_naming_both_key_ids(tmp_path: Path) -> None:
    root = calibrated_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match=f"another key .*{key_id(KEY)}.*{key_id(OTHER)}") as caught:
        load_bundle(root, verify_key=OTHER)
    assert KEY.decode() not in str(caught.value) and OTHER.decode() not in str(caught.value)


def test_a_garbled_signature_file_is_refused(tmp_path: Path) -> None:
    root = calibrated_bundle(tmp_path / "b")
    (root / SIGNATURE).write_bytes(b"not json")
    with pytest.raises(BundleError, match=r"manifest\.sig is not valid JSON"):
        load_bundle(root, verify_key=KEY)


def test_a_threshold_a_thousand_times_off_the_calibration_is_refused_without_a_key(tmp_path: Path) -> None:
    root = calibrated_bundle(tmp_path / "b")
    edit_manifest(root, threshold=592.8)  # the edit: 0.5928 x 1000
    with pytest.raises(
        BundleError, match=r"implausible threshold 592.8: the calibration recorded 0.44..0.71"
    ):
        load_bundle(root)
    with pytest.raises(BundleError, match="implausible threshold"):
        calibrated_bundle(tmp_path / "c", threshold=592.8)  # nor can one be written


def test_limits_of_1e12_are_refused_without_a_key(tmp_path: Path) -> None:
    root = calibrated_bundle(tmp_path / "b")
    manifest = orjson.loads((root / MANIFEST).read_bytes())
    manifest["limits"]["flow"] = {"low": 0.0, "high": 1e12}
    (root / MANIFEST).write_bytes(orjson.dumps(manifest))
    with pytest.raises(BundleError, match=r"implausible limits.flow.high 1e\+12"):
        load_bundle(root)


def test_hand_made_bundles_without_recorded_thresholds_are_not_judged(tmp_path: Path) -> None:
    assert load_bundle(build_linear_bundle(tmp_path / "b", threshold=1e6)).threshold == 1e6


def test_a_key_is_long_enough_and_never_named_in_the_error() -> None:
    with pytest.raises(ConfigError, match="at least 16 bytes, got 5") as caught:
        key_from_text("short\n", "bundle_key")
    assert "short" not in str(caught.value)
    assert key_from_text(" " + "x" * 20 + "\n", "bundle_key") == b"x" * 20
