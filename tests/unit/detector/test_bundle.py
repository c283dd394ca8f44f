from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from detector.bundle import (
    FORMAT_VERSION,
    KERAS_MODEL,
    MANIFEST,
    ONNX_MODEL,
    SIZE_LIMITS,
    Bundle,
    load_bundle,
    sha256_file,
    write_bundle,
)
from detector.errors import BundleError
from detector.line.calibration import LineCalibration, SegmentCalibration
from detector.readings import DEFAULT_SENSORS, ParseFailure, Reading
from detector.testing import LINE_SENSORS, SEED_MEAN, default_scalers
from detector.topology import Topology
from detector.windows import WindowSpec
from devtools.stand_ins import (
    LinearReconstructor,
    build_linear_bundle,
    linear_onnx_model,
    linear_reconstructors,
)


def edit_manifest(bundle: Path, **changes: object) -> None:
    path = bundle / MANIFEST
    fields = json.loads(path.read_text())
    fields.update(changes)
    path.write_text(json.dumps(fields))


def test_a_written_bundle_loads_and_scores(linear_bundle: Path) -> None:
    bundle = load_bundle(linear_bundle, expected_sensors=DEFAULT_SENSORS)
    assert isinstance(bundle, Bundle)
    assert bundle.threshold == 1.0
    assert bundle.window_spec == WindowSpec()
    assert bundle.model_version == "test-linear-1"
    assert bundle.manifest.format_version == FORMAT_VERSION
    windows = np.tile(np.asarray(SEED_MEAN, dtype=np.float32), (3, 30, 1))
    windows[1, :, 0] += 40.0  # two standard deviations of flow
    result = bundle.score(["EST-01", "EST-01", "elsewhere"], windows)
    assert result.scores.shape == (3,) and result.contributions.shape == (3, 5)
    # x_hat = 0.5 x in scaled space: error = 0.25 · mean(x²) = 0.25 · 4 / 5 sensors.
    assert result.scores[1] == pytest.approx(0.2, rel=1e-5)
    assert result.scores[0] == pytest.approx(0.0, abs=1e-9)
    assert result.contributions[1, 0] == pytest.approx(1.0)
    assert bundle.score([], np.empty((0, 30, 5))).scores.shape == (0,)


def test_the_bundle_parser_uses_its_sensors_and_limits(linear_bundle: Path) -> None:
    parser = load_bundle(linear_bundle).parser()
    good = (
        b'{"station_id":"A","ts":"2025-01-01T00:00:00Z",'
        b'"flow":1,"pressure":1,"pump_rpm":1,"tank_level":1,"power":1}'
    )
    assert isinstance(parser.parse(good), Reading)
    failure = parser.parse(good.replace(b'"flow":1', b'"flow":-1'))
    assert isinstance(failure, ParseFailure) and failure.reason == "out_of_range"


def test_the_manifest_lists_every_file_with_its_checksum(linear_bundle: Path) -> None:
    fields = json.loads((linear_bundle / MANIFEST).read_text())
    assert set(fields["files"]) == {ONNX_MODEL, "MODEL_CARD.md"}
    for name, digest in fields["files"].items():
        assert sha256_file(linear_bundle / name) == digest
    assert fields["window"]["length"] == 1800.0
    assert fields["created_at"].endswith("Z")
    assert "EST-01" in fields["scalers"]["per_station"]
    assert not [p for p in linear_bundle.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_writing_over_an_existing_bundle_needs_overwrite(tmp_path: Path) -> None:
    first = build_linear_bundle(tmp_path / "b", threshold=1.0)
    with pytest.raises(BundleError, match="already exists"):
        build_linear_bundle(first, threshold=2.0)
    write_bundle(
        first,
        onnx_model=linear_onnx_model(30, 5),
        keras_model_file=None,
        model_version="v2",
        sensors=DEFAULT_SENSORS,
        window=WindowSpec(),
        scalers=default_scalers(5),
        aggregation="max",
        threshold=2.0,
        overwrite=True,
    )
    assert load_bundle(first).threshold == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_a_keras_file_is_copied_and_hashed(tmp_path: Path) -> None:
    keras_file = tmp_path / "trained.keras"
    keras_file.write_bytes(b"zip bytes stand-in")
    path = write_bundle(
        tmp_path / "b",
        onnx_model=linear_onnx_model(30, 5),
        keras_model_file=keras_file,
        model_version="v1",
        sensors=DEFAULT_SENSORS,
        window=WindowSpec(),
        scalers=default_scalers(5),
        aggregation="topk",
        topk=3,
        threshold=0.5,
    )
    assert (path / KERAS_MODEL).read_bytes() == b"zip bytes stand-in"
    assert load_bundle(path).manifest.topk == 3


def test_invalid_fields_are_refused_at_write(tmp_path: Path) -> None:
    common = {
        "onnx_model": linear_onnx_model(30, 5),
        "keras_model_file": None,
        "sensors": DEFAULT_SENSORS,
        "window": WindowSpec(),
        "scalers": default_scalers(5),
    }
    with pytest.raises(BundleError, match="aggregation"):
        write_bundle(tmp_path / "a", model_version="v", aggregation="median", threshold=1.0, **common)  # type: ignore[arg-type]
    with pytest.raises(BundleError, match="invalid manifest"):
        write_bundle(tmp_path / "b", model_version="v", aggregation="mean", threshold=-1.0, **common)  # type: ignore[arg-type]
    with pytest.raises(BundleError):
        write_bundle(tmp_path / "c", model_version="bad version", aggregation="mean", threshold=1.0, **common)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


# -- refusals ----------------------------------------------------------------------------------
def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")


def test_missing_model(linear_bundle: Path) -> None:
    (linear_bundle / ONNX_MODEL).unlink()
    with pytest.raises(BundleError, match=f"missing file {ONNX_MODEL}"):
        load_bundle(linear_bundle)


def test_missing_manifest(linear_bundle: Path) -> None:
    (linear_bundle / MANIFEST).unlink()
    with pytest.raises(BundleError, match=f"missing file {MANIFEST}"):
        load_bundle(linear_bundle)


def test_missing_optional_file_that_the_manifest_lists(linear_bundle: Path) -> None:
    (linear_bundle / "MODEL_CARD.md").unlink()
    with pytest.raises(BundleError, match=r"missing file MODEL_CARD\.md"):
        load_bundle(linear_bundle)


def test_tampered_model(linear_bundle: Path) -> None:
    with (linear_bundle / ONNX_MODEL).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match=f"checksum mismatch for {ONNX_MODEL}"):
        load_bundle(linear_bundle)


def test_extra_file_of_an_allowed_name_not_in_the_manifest(linear_bundle: Path) -> None:
    (linear_bundle / KERAS_MODEL).write_bytes(b"x")
    with pytest.raises(BundleError, match=f"extra file {KERAS_MODEL}"):
        load_bundle(linear_bundle)


@pytest.mark.parametrize("name", ["model.pkl", "notes.txt", "weights.npy"])
def test_extra_file_of_another_type(linear_bundle: Path, name: str) -> None:
    (linear_bundle / name).write_bytes(b"x")
    with pytest.raises(BundleError, match=f"extra file {name}"):
        load_bundle(linear_bundle)


def test_subfolder(linear_bundle: Path) -> None:
    (linear_bundle / "more").mkdir()
    with pytest.raises(BundleError, match="unexpected folder more"):
        load_bundle(linear_bundle)


def test_symlink_inside(linear_bundle: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.onnx"
    (linear_bundle / ONNX_MODEL).rename(real)
    os.symlink(real, linear_bundle / ONNX_MODEL)
    with pytest.raises(BundleError, match=f"{ONNX_MODEL} is a symlink"):
        load_bundle(linear_bundle)


def test_the_folder_itself_may_be_reached_through_a_symlink(linear_bundle: Path, tmp_path: Path) -> None:
    os.symlink(linear_bundle, tmp_path / "current")
    assert load_bundle(tmp_path / "current").path == linear_bundle.resolve()


def test_unknown_format_version(linear_bundle: Path) -> None:
    edit_manifest(linear_bundle, format_version=2)
    with pytest.raises(BundleError, match="unknown format version 2"):
        load_bundle(linear_bundle)


def test_sensors_mismatch(linear_bundle: Path) -> None:
    with pytest.raises(BundleError, match="sensors mismatch"):
        load_bundle(linear_bundle, expected_sensors=["flow", "pressure"])


def test_manifest_not_json(linear_bundle: Path) -> None:
    (linear_bundle / MANIFEST).write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(linear_bundle)


def test_manifest_with_unknown_field(linear_bundle: Path) -> None:
    edit_manifest(linear_bundle, surprise=1)
    with pytest.raises(BundleError, match="invalid manifest at surprise"):
        load_bundle(linear_bundle)


def test_manifest_threshold_not_positive(linear_bundle: Path) -> None:
    edit_manifest(linear_bundle, threshold=0)
    with pytest.raises(BundleError, match="invalid manifest at threshold"):
        load_bundle(linear_bundle)


def test_scalers_of_the_wrong_width(linear_bundle: Path) -> None:
    edit_manifest(linear_bundle, scalers={"fallback": {"mean": [0.0], "scale": [1.0]}})
    with pytest.raises(BundleError, match="scaler of fallback"):
        load_bundle(linear_bundle)


def test_model_of_the_wrong_geometry(tmp_path: Path) -> None:
    bundle = build_linear_bundle(tmp_path / "b")
    (bundle / ONNX_MODEL).write_bytes(linear_onnx_model(20, 5))
    fields = json.loads((bundle / MANIFEST).read_text())
    fields["files"][ONNX_MODEL] = sha256_file(bundle / ONNX_MODEL)
    (bundle / MANIFEST).write_text(json.dumps(fields))
    with pytest.raises(BundleError, match="input axis 1 is 20"):
        load_bundle(bundle)


def test_model_that_is_not_onnx(tmp_path: Path) -> None:
    bundle = build_linear_bundle(tmp_path / "b")
    (bundle / ONNX_MODEL).write_bytes(b"not a model")
    fields = json.loads((bundle / MANIFEST).read_text())
    fields["files"][ONNX_MODEL] = sha256_file(bundle / ONNX_MODEL)
    (bundle / MANIFEST).write_text(json.dumps(fields))
    with pytest.raises(BundleError, match="ONNX Runtime cannot load"):
        load_bundle(bundle)


def test_oversized_file(linear_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SIZE_LIMITS, "MODEL_CARD.md", 4)
    with pytest.raises(BundleError, match=r"MODEL_CARD\.md is .* over the limit"):
        load_bundle(linear_bundle)


def test_no_pickle_anywhere() -> None:
    source = Path(__file__).resolve().parents[3] / "detector"
    for module in source.glob("*.py"):
        text = module.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text, module


def test_records_with_numpy_values_are_written_as_plain_json(tmp_path: Path) -> None:
    path = write_bundle(
        tmp_path / "b",
        onnx_model=linear_onnx_model(30, 5),
        keras_model_file=None,
        model_version="v1",
        sensors=DEFAULT_SENSORS,
        window=WindowSpec(),
        scalers=default_scalers(5),
        aggregation="mean",
        threshold=np.float64(1.5),  # type: ignore[arg-type]
        calibration={"percentile": np.float32(99.5), "curve": np.arange(3), "auc": float("nan")},
        training={"epochs": np.int64(3), "shape": (2, 3)},
    )
    manifest = load_bundle(path).manifest
    assert manifest.calibration == {"percentile": 99.5, "curve": [0, 1, 2], "auc": None}
    assert manifest.training == {"epochs": 3, "shape": [2, 3]}
    with pytest.raises(BundleError, match=r"calibration\.model has type object"):
        write_bundle(
            tmp_path / "c",
            onnx_model=linear_onnx_model(30, 5),
            keras_model_file=None,
            model_version="v1",
            sensors=DEFAULT_SENSORS,
            window=WindowSpec(),
            scalers=default_scalers(5),
            aggregation="mean",
            threshold=1.0,
            calibration={"model": object()},
        )


def test_model_with_the_wrong_output_shape(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["windows"], ["reconstruction"], axes=[2], keepdims=1)],
        "wrong_output",
        [helper.make_tensor_value_info("windows", TensorProto.FLOAT, ["batch", 30, 5])],
        [helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT, ["batch", 30, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    bundle = build_linear_bundle(tmp_path / "b")
    (bundle / ONNX_MODEL).write_bytes(model.SerializeToString())
    fields = json.loads((bundle / MANIFEST).read_text())
    fields["files"][ONNX_MODEL] = sha256_file(bundle / ONNX_MODEL)
    (bundle / MANIFEST).write_text(json.dumps(fields))
    with pytest.raises(BundleError, match=r"fails on one window: the model returned shape \(1, 30, 1\)"):
        load_bundle(bundle)


def test_a_bundle_scores_through_any_reconstructor(linear_bundle: Path) -> None:
    served = load_bundle(linear_bundle)
    stand_in = load_bundle(linear_bundle, reconstructor_factory=linear_reconstructors(0.5))
    assert isinstance(stand_in.reconstructor, LinearReconstructor)
    raw = np.random.default_rng(5).normal(SEED_MEAN, 5.0, size=(9, 30, 5))
    stations = ["EST-01"] * 9
    expected = served.score(stations, raw)
    got = stand_in.score(stations, raw)
    np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-5)
    np.testing.assert_allclose(got.contributions, expected.contributions, rtol=1e-5, atol=1e-9)


def test_a_reconstructor_that_answers_another_shape_is_refused_at_load(linear_bundle: Path) -> None:
    class OneSensor:
        def reconstruct(self, x_scaled: object) -> np.ndarray:
            return np.asarray(x_scaled, dtype=np.float32)[..., :1]

    with pytest.raises(BundleError, match=r"fails on one window: the model returned shape \(1, 30, 1\)"):
        load_bundle(linear_bundle, reconstructor_factory=lambda _path, _shape: OneSensor())


def test_a_factory_refusal_names_the_bundle(linear_bundle: Path) -> None:
    def refuse(_path: Path, shape: tuple[int, int]) -> LinearReconstructor:
        raise BundleError(f"no model for {shape}")

    with pytest.raises(BundleError, match=r"model.onnx: no model for \(30, 5\)"):
        load_bundle(linear_bundle, reconstructor_factory=refuse)


# -- the line (topology + segment calibration) -------------------------------------------------
LINE_STATIONS = ("EST-01", "EST-02", "EST-03")


def three_station_topology() -> Topology:
    return Topology.from_dict(
        {
            "format": 1,
            "line": [
                {
                    "id": "L1",
                    "station": [
                        {"id": "EST-01", "tank_area_m2": 250.0},
                        {"id": "EST-02", "tank_area_m2": 180.0},
                        {"id": "EST-03", "tank_area_m2": "none"},
                    ],
                    "segment": [
                        {
                            "upstream": "EST-01",
                            "downstream": "EST-02",
                            "length_km": 52.0,
                            "inner_diameter_m": 0.3,
                        },
                        {
                            "upstream": "EST-02",
                            "downstream": "EST-03",
                            "length_km": 40.0,
                            "inner_diameter_m": 0.3,
                        },
                    ],
                }
            ],
        }
    )


def calibration_of(topology: Topology) -> LineCalibration:
    return LineCalibration(
        {
            segment.segment_id: SegmentCalibration(
                segment.segment_id, bias_m3h=0.5, sigma_m3h=3.0, limit=40.0
            )
            for segment in topology.segments
        },
        budget_per_segment_month=0.5,
        record={"rows": 100},
    )


@pytest.fixture
def line_bundle(tmp_path: Path) -> Path:
    topology = three_station_topology()
    return build_linear_bundle(
        tmp_path / "line-bundle",
        sensors=LINE_SENSORS,
        stations=LINE_STATIONS,
        line=(topology, calibration_of(topology)),
    )


def test_a_bundle_with_a_line_round_trips(line_bundle: Path) -> None:
    topology = three_station_topology()
    bundle = load_bundle(line_bundle)
    assert bundle.topology == topology
    assert bundle.line_calibration == calibration_of(topology)
    assert bundle.line_calibration is not None
    assert set(bundle.line_calibration.segments) == {"EST-01>EST-02", "EST-02>EST-03"}
    assert bundle.line_calibration.segments["EST-01>EST-02"].limit == 40.0


def test_a_bundle_whose_topology_predates_the_clock_tolerance_loads_with_the_default(
    line_bundle: Path,
) -> None:
    fields = json.loads((line_bundle / MANIFEST).read_text())
    for line in fields["line"]["topology"]["line"]:
        del line["clock_tolerance_s"]
    (line_bundle / MANIFEST).write_text(json.dumps(fields))
    bundle = load_bundle(line_bundle)
    assert bundle.topology is not None
    assert [line.clock_tolerance_s for line in bundle.topology.lines] == [90.0]
    assert bundle.topology == three_station_topology()


def test_a_bundle_without_a_line_has_none(linear_bundle: Path) -> None:
    bundle = load_bundle(linear_bundle)
    assert bundle.topology is None and bundle.line_calibration is None
    assert json.loads((linear_bundle / MANIFEST).read_text())["line"] is None
