from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from detector.bundle import Bundle, load_bundle
from detector.clock import ManualClock
from detector.onnx_runtime import onnx_scorers
from detector.windows import WindowSpec
from devtools.stand_ins import build_linear_bundle
from stream.metrics import DetectorMetrics
from stream.reload import BundleWatcher, bundle_loader


def watcher_for(path: Path, ticker: ManualClock) -> tuple[BundleWatcher, DetectorMetrics]:
    metrics = DetectorMetrics(CollectorRegistry())
    return BundleWatcher(
        path, bundle_loader(onnx_scorers(1, 64)), metrics, interval_s=5, monotonic=ticker
    ), metrics


def flip(link: Path, target: Path) -> None:
    staging = link.with_name(link.name + ".new")
    staging.symlink_to(target)
    staging.replace(link)


def test_a_new_bundle_behind_the_link_is_loaded_after_the_interval(tmp_path: Path, bundle: Bundle) -> None:
    link = tmp_path / "current"
    link.symlink_to(bundle.path)
    ticker = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
    watcher, metrics = watcher_for(link, ticker)
    assert watcher.poll(bundle) is None
    flip(link, build_linear_bundle(tmp_path / "v2", model_version="v2", threshold=3.0))
    assert watcher.poll(bundle) is None  # not yet: checked every interval_s
    ticker.advance(6)
    fresh = watcher.poll(bundle)
    assert fresh is not None
    assert (fresh.model_version, fresh.threshold) == ("v2", 3.0)
    assert metrics.registry.get_sample_value("centinela_model_reloads_total") == 1
    ticker.advance(6)
    assert watcher.poll(fresh) is None  # nothing new since


def test_a_corrupt_bundle_is_refused_and_counted(tmp_path: Path, bundle_path: Path, bundle: Bundle) -> None:
    ticker = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
    watcher, metrics = watcher_for(bundle_path, ticker)
    (bundle_path / "model.onnx").write_bytes(b"garbage")
    watcher.request()  # SIGHUP
    assert watcher.poll(bundle) is None
    assert metrics.registry.get_sample_value("centinela_model_reload_failures_total") == 1
    ticker.advance(6)
    assert watcher.poll(bundle) is None  # the same broken bundle is not retried every interval
    assert metrics.registry.get_sample_value("centinela_model_reload_failures_total") == 1


def test_a_bundle_with_other_sensors_or_windows_needs_a_restart(tmp_path: Path, bundle: Bundle) -> None:
    ticker = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
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
    ticker = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
    watcher, _metrics = watcher_for(target, ticker)
    shutil.rmtree(target)
    build_linear_bundle(target, model_version="rewritten")
    ticker.advance(6)
    fresh = watcher.poll(load_bundle(bundle.path))
    assert fresh is not None
    assert fresh.model_version == "rewritten"


def test_with_a_key_an_unsigned_or_edited_bundle_is_refused_at_reload_and_the_served_one_kept(
    tmp_path: Path,
) -> None:
    import orjson

    from detector.bundle import MANIFEST, sign_bundle

    key = b"s" * 32
    served = load_bundle(sign_bundle(build_linear_bundle(tmp_path / "v1"), key), verify_key=key)
    link = tmp_path / "current"
    link.symlink_to(served.path)
    metrics = DetectorMetrics(CollectorRegistry())
    watcher = BundleWatcher(
        link,
        bundle_loader(onnx_scorers(1, 64), verify_key=key),
        metrics,
        interval_s=5,
        monotonic=ManualClock(datetime(2025, 1, 1, tzinfo=UTC)),
    )

    flip(link, build_linear_bundle(tmp_path / "unsigned", model_version="v2"))
    watcher.request()
    assert watcher.poll(served) is None
    edited = sign_bundle(build_linear_bundle(tmp_path / "edited", model_version="v3"), key)
    manifest = orjson.loads((edited / MANIFEST).read_bytes())
    (edited / MANIFEST).write_bytes(orjson.dumps({**manifest, "threshold": manifest["threshold"] * 1000}))
    flip(link, edited)
    watcher.request()
    assert watcher.poll(served) is None
    assert metrics.registry.get_sample_value("centinela_model_reload_failures_total") == 2
    flip(link, sign_bundle(build_linear_bundle(tmp_path / "good", model_version="v4"), key))
    watcher.request()
    fresh = watcher.poll(served)
    assert fresh is not None and fresh.model_version == "v4"


def test_the_bundle_key_is_one_setting_and_never_shown(tmp_path: Path) -> None:
    import pytest

    from detector.errors import ConfigError
    from stream.settings import bundle_verify_key, describe, load_settings

    settings = load_settings(bundle_key="a-long-enough-secret-key")
    assert bundle_verify_key(settings) == b"a-long-enough-secret-key"
    assert "a-long-enough-secret-key" not in str(describe(settings))
    key_file = tmp_path / "bundle.key"
    key_file.write_text("from-a-mounted-secret-file\n")
    assert bundle_verify_key(load_settings(bundle_key_file=key_file)) == b"from-a-mounted-secret-file"
    with pytest.raises(ConfigError, match="bundle_key or bundle_key_file, not both"):
        load_settings(bundle_key="a-long-enough-secret-key", bundle_key_file=key_file)
    with pytest.raises(ConfigError, match="cannot read the key file"):
        bundle_verify_key(load_settings(bundle_key_file=tmp_path / "missing"))
    assert bundle_verify_key(load_settings()) is None
