"""Tampered bundles are refused, at the detector's start and at a reload.

tests/unit/detector/test_bundle.py covers an appended byte, extra regular files, a subfolder and
the model replaced by a symlink. This adds what an attacker with write access to the models
folder would try next: a byte changed in place (same size), a symlink of an unlisted name pointing
out of the folder, a symlinked manifest or subfolder, a FIFO; and checks the service's own entry
points (``stream.runner.load_serving_bundle``, ``centinela detect --check``) refuse them too. A
manifest whose ``line`` (topology and segment calibration) was edited is refused naming the field,
at load and at a hot reload.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from detector.bundle import MANIFEST, ONNX_MODEL, load_bundle
from detector.errors import BundleError
from detector.testing import LINE_SENSORS
from devtools.stand_ins import build_linear_bundle, example_line
from stream.runner import load_serving_bundle
from stream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LINE_STATIONS = ("EST-01", "EST-02", "EST-03")


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return build_linear_bundle(tmp_path / "bundle")


def _flip_a_byte_in_the_middle(bundle: Path) -> None:
    model = bundle / ONNX_MODEL
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))


def _symlink_out_of_the_folder(bundle: Path) -> None:
    (bundle / "notes.txt").symlink_to("/etc/passwd")


def _manifest_through_a_symlink(bundle: Path) -> None:
    outside = bundle.parent / "manifest-elsewhere.json"
    (bundle / MANIFEST).rename(outside)
    (bundle / MANIFEST).symlink_to(outside)


def _symlinked_subfolder(bundle: Path) -> None:
    (bundle / "more").symlink_to(bundle.parent)


def _fifo(bundle: Path) -> None:
    # Reading a FIFO would block for ever: the loader must look at the file type first.
    (bundle / "MODEL_CARD.md").unlink()
    os.mkfifo(bundle / "MODEL_CARD.md")


TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "changed byte": (_flip_a_byte_in_the_middle, f"checksum mismatch for {ONNX_MODEL}"),
    "symlink out of the folder": (_symlink_out_of_the_folder, "notes.txt is a symlink"),
    "symlinked manifest": (_manifest_through_a_symlink, f"{MANIFEST} is a symlink"),
    "symlinked subfolder": (_symlinked_subfolder, "more is a symlink"),
    "fifo": (_fifo, "MODEL_CARD.md"),
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_a_tampered_bundle_is_refused_by_the_loader_and_the_service(bundle: Path, how: str) -> None:
    tamper, message = TAMPERING[how]
    load_bundle(bundle)  # intact, it loads
    tamper(bundle)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle)
    settings = Settings(bundle_path=bundle, instance_id="tamper", metrics_enabled=False)
    with pytest.raises(BundleError, match=message):
        load_serving_bundle(settings)


@pytest.mark.slow
def test_detect_check_exits_non_zero_naming_the_problem(bundle: Path) -> None:
    _flip_a_byte_in_the_middle(bundle)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTINELA_")}
    done = subprocess.run(
        [sys.executable, "-m", "centinela", "detect", "--check", "--bundle", str(bundle)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert f"checksum mismatch for {ONNX_MODEL}" in done.stdout + done.stderr


# -- the manifest's line (topology + segment calibration) ----------------------------------------
# The manifest is not hashed (it holds the hashes), so its line is checked for consistency instead:
# an edited topology or calibration must not reach the service's segment monitor.
@pytest.fixture
def line_bundle(tmp_path: Path) -> Path:
    return build_linear_bundle(
        tmp_path / "line-bundle",
        sensors=LINE_SENSORS,
        stations=LINE_STATIONS,
        line=example_line(LINE_STATIONS),
    )


def _edit_line(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    edit(manifest["line"])
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def _station_not_in_the_bundle(line: dict[str, Any]) -> None:
    # Still a valid topology, with a calibrated segment: only the bundle's stations can refuse it.
    longer, calibration = example_line((*LINE_STATIONS, "EST-09"))
    line["topology"] = longer.to_dict()
    line["calibration"] = calibration.to_dict()


def _segment_without_calibration(line: dict[str, Any]) -> None:
    del line["calibration"]["segments"]["EST-02>EST-03"]


def _calibration_field_missing(line: dict[str, Any]) -> None:
    del line["calibration"]["segments"]["EST-01>EST-02"]["limit"]


def _calibration_field_not_a_number(line: dict[str, Any]) -> None:
    line["calibration"]["segments"]["EST-02>EST-03"]["sigma_m3h"] = "small"


def _negative_limit(line: dict[str, Any]) -> None:
    line["calibration"]["segments"]["EST-01>EST-02"]["limit"] = -5.0


def _calibration_under_another_name(line: dict[str, Any]) -> None:
    segments = line["calibration"]["segments"]
    segments["EST-01>EST-02"]["segment_id"] = "EST-02>EST-03"


def _zero_window_spread(line: dict[str, Any]) -> None:
    line["calibration"]["segments"]["EST-02>EST-03"]["window_sigma_m3"][1] = 0.0


def _no_calibration(line: dict[str, Any]) -> None:
    del line["calibration"]


def _unknown_calibration_format(line: dict[str, Any]) -> None:
    line["calibration"]["format"] = 99


def _topology_with_a_cycle(line: dict[str, Any]) -> None:
    line["topology"]["line"][0]["segment"].append(
        {"upstream": "EST-03", "downstream": "EST-01", "length_km": 10.0, "inner_diameter_m": 0.3}
    )


LINE_TAMPERING: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "station not in the bundle": (
        _station_not_in_the_bundle,
        r"line\.topology: station\(s\) EST-09 are not in the bundle's stations",
    ),
    "segment without calibration": (
        _segment_without_calibration,
        r"line\.calibration has no segment EST-02>EST-03 of the topology",
    ),
    "calibration field missing": (
        _calibration_field_missing,
        r"line\.calibration\.segments\['EST-01>EST-02'\]: segment calibration is malformed: "
        r"KeyError\('limit'\)",
    ),
    "calibration field not a number": (
        _calibration_field_not_a_number,
        r"line\.calibration\.segments\['EST-02>EST-03'\]: segment calibration is malformed",
    ),
    "negative limit": (_negative_limit, r"segments\['EST-01>EST-02'\]\.limit must be a positive number"),
    "calibration under another name": (
        _calibration_under_another_name,
        r"segments\['EST-01>EST-02'\]: segment_id is 'EST-02>EST-03', not 'EST-01>EST-02'",
    ),
    "no calibration": (_no_calibration, r"line lacks 'calibration'"),
    "zero window spread": (
        _zero_window_spread,
        r"segments\['EST-02>EST-03'\]: window 1 \(10 min, window_sigma_m3 0\.0\) needs a positive",
    ),
    "unknown calibration format": (
        _unknown_calibration_format,
        r"line\.calibration: line calibration format 99",
    ),
    "topology with a cycle": (_topology_with_a_cycle, r"line\.topology.*segment\[2\]"),
}


@pytest.mark.parametrize("how", sorted(LINE_TAMPERING))
def test_a_tampered_line_is_refused_naming_it(line_bundle: Path, how: str) -> None:
    tamper, message = LINE_TAMPERING[how]
    assert load_bundle(line_bundle).topology is not None  # intact, it loads with its line
    _edit_line(line_bundle, tamper)
    with pytest.raises(BundleError, match=message) as refused:
        load_bundle(line_bundle)
    assert str(line_bundle.resolve()) in str(refused.value)
    settings = Settings(bundle_path=line_bundle, instance_id="tamper", metrics_enabled=False)
    with pytest.raises(BundleError, match=message):
        load_serving_bundle(settings)


def test_a_line_that_disagrees_with_the_bundle_is_refused_at_write(tmp_path: Path) -> None:
    _, calibration = example_line(LINE_STATIONS)
    longer, _ = example_line((*LINE_STATIONS, "EST-09"))
    with pytest.raises(BundleError, match="EST-09"):
        build_linear_bundle(
            tmp_path / "b", sensors=LINE_SENSORS, stations=LINE_STATIONS, line=(longer, calibration)
        )
    with pytest.raises(BundleError, match=r"sensor\(s\) suction_pressure used by the balance"):
        build_linear_bundle(tmp_path / "c", stations=LINE_STATIONS, line=example_line(LINE_STATIONS))
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_hot_reload_swaps_in_a_line_bundle_and_refuses_a_tampered_one(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from detector.onnx_runtime import onnx_scorers
    from stream.metrics import DetectorMetrics
    from stream.reload import BundleWatcher, bundle_loader

    plain = build_linear_bundle(tmp_path / "v1", sensors=LINE_SENSORS, stations=LINE_STATIONS)
    link = tmp_path / "current"
    link.symlink_to(plain)
    metrics = DetectorMetrics(CollectorRegistry())
    watcher = BundleWatcher(link, bundle_loader(onnx_scorers(1, 64)), metrics, watch=False)
    current = load_bundle(link)
    assert current.topology is None

    line_bundle = build_linear_bundle(
        tmp_path / "v2",
        sensors=LINE_SENSORS,
        stations=LINE_STATIONS,
        model_version="v2",
        line=example_line(LINE_STATIONS),
    )
    link.unlink()
    link.symlink_to(line_bundle)
    watcher.request()
    fresh = watcher.poll(current)
    assert fresh is not None and fresh.model_version == "v2"
    assert fresh.topology == example_line(LINE_STATIONS)[0]

    _edit_line(line_bundle, _segment_without_calibration)
    watcher.request()
    assert watcher.poll(fresh) is None  # refused; the caller keeps serving ``fresh``
    assert metrics.registry.get_sample_value("centinela_model_reload_failures_total") == 1
    assert metrics.registry.get_sample_value("centinela_model_reloads_total") == 1
