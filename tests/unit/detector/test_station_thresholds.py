"""Per-station thresholds in the bundle: served for their stations, only ever above the shared one."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.bundle import load_bundle, write_bundle
from detector.errors import BundleError
from detector.testing import default_scalers
from detector.windows import WindowSpec
from devtools.stand_ins import linear_onnx_model

SENSORS = ("flow", "pressure")


def bundle(tmp_path: Path, station_thresholds: dict[str, float]) -> Path:
    spec = WindowSpec()
    return write_bundle(
        tmp_path / "b",
        onnx_model=linear_onnx_model(spec.samples_per_window, len(SENSORS), 0.5),
        keras_model_file=None,
        model_version="per-station-1",
        sensors=SENSORS,
        window=spec,
        scalers=default_scalers(len(SENSORS), ()),
        aggregation="mean",
        threshold=2.0,
        station_thresholds=station_thresholds,
        overwrite=True,
    )


def test_a_station_s_own_threshold_is_served_and_others_keep_the_shared_one(tmp_path: Path) -> None:
    served = load_bundle(bundle(tmp_path, {"EST-02": 5.0}))
    assert served.threshold_for("EST-02") == 5.0
    assert served.threshold_for("EST-01") == served.threshold == 2.0


@pytest.mark.parametrize("value", [1.0, 500.0])
def test_a_station_threshold_below_the_shared_one_or_far_above_is_refused_naming_it(
    tmp_path: Path, value: float
) -> None:
    with pytest.raises(BundleError, match=r"station_thresholds\['EST-02'\]"):
        bundle(tmp_path, {"EST-02": value})
