from __future__ import annotations

import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry

from detector.bundle import Bundle, load_bundle
from detector.testing import build_linear_bundle
from detector.windows import WindowSpec
from stream.metrics import DetectorMetrics
from stream.reload import BundleWatcher, bundle_loader


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def watcher_for(path: Path, ticker: Ticker) -> tuple[BundleWatcher, DetectorMetrics]:
    metrics = DetectorMetrics(CollectorRegistry())
    return BundleWatcher(path, bundle_loader(1, 64), metrics, interval_s=5, monotonic=ticker), metrics


def flip(link: Path, target: Path) -> None:
    staging = link.with_name(link.name + ".new")
    staging.symlink_to(target)
    staging.replace(link)


def test_a_new_bundle_behind_the_link_is_loaded_after_the_interval(tmp_path: Path, bundle: Bundle) -> None:
    link = tmp_path / "current"
    link.symlink_to(bundle.path)
    ticker = Ticker()
    watcher, metrics = watcher_for(link, ticker)
    assert watcher.poll(bundle) is None
    flip(link, build_linear_bundle(tmp_path / "v2", model_version="v2", threshold=3.0))
    assert watcher.poll(bundle) is None  # not yet: checked every interval_s
    ticker.now = 6
    fresh = watcher.poll(bundle)
    assert fresh is not None
    assert (fresh.model_version, fresh.threshold) == ("v2", 3.0)
    assert metrics.registry.get_sample_value("centinela_model_reloads_total") == 1
    ticker.now = 12
    assert watcher.poll(fresh) is None  # nothing new since


def test_a_corrupt_bundle_is_refused_and_counted(tmp_path: Path, bundle_path: Path, bundle: Bundle) -> None:
    ticker = Ticker()
    watcher, metrics = watcher_for(bundle_path, ticker)
    (bundle_path / "model.onnx").write_bytes(b"garbage")
    watcher.request()  # SIGHUP
    assert watcher.poll(bundle) is None
    assert metrics.registry.get_sample_value("centinela_model_reload_failures_total") == 1
    ticker.now = 6
    assert watcher.poll(bundle) is None  # the same broken bundle is not retried every interval
    assert metrics.registry.get_sample_value("centinela_model_reload_failures_total") == 1


def test_a_bundle_with_other_sensors_or_windows_needs_a_restart(tmp_path: Path, bundle: Bundle) -> None:
    ticker = Ticker()
    for name, extra in (
        ("sensors", {"sensors": ("flow", "pressure")}),
        ("window", {"window": WindowSpec(length=WindowSpec().length * 2)}),
    ):
        candidate = build_linear_bundle(tmp_path / name, **extra)  # type: ignore[arg-type]
        watcher, metrics = watcher_for(candidate, ticker)
        watcher.request()
        assert watcher.poll(bundle) is None
        assert metrics.registry.get_sample_value("centinela_model_reload_failures_total") == 1


def test_a_bundle_written_in_place_is_picked_up(tmp_path: Path, bundle: Bundle) -> None:
    target = tmp_path / "live"
    shutil.copytree(bundle.path, target)
    ticker = Ticker()
    watcher, _metrics = watcher_for(target, ticker)
    shutil.rmtree(target)
    build_linear_bundle(target, model_version="rewritten")
    ticker.now = 6
    fresh = watcher.poll(load_bundle(bundle.path))
    assert fresh is not None
    assert fresh.model_version == "rewritten"
