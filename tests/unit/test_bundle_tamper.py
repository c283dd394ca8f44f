"""Tampered bundles are refused, at the detector's start and at a reload.

tests/unit/detector/test_bundle.py covers an appended byte, extra regular files, a subfolder and
the model replaced by a symlink. This adds what an attacker with write access to the models
folder would try next: a byte changed in place (same size), a symlink of an unlisted name pointing
out of the folder, a symlinked manifest or subfolder, a FIFO; and checks the service's own entry
points (``stream.runner.load_serving_bundle``, ``centinela detect --check``) refuse them too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from detector.bundle import MANIFEST, ONNX_MODEL, load_bundle
from detector.errors import BundleError
from detector.testing import build_linear_bundle
from stream.runner import load_serving_bundle
from stream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


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
