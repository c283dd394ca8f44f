"""Small bundles and models for tests and benchmarks, built without training or TensorFlow.

``build_linear_bundle``: the serving model is a tiny hand-made ONNX graph (``x_hat = factor · x``),
built with the ``onnx`` package in milliseconds. Its score is a known function of the input, which
service tests can use to force an incident. A real (random-weight) LSTM autoencoder bundle, built with
the trainer's own model, is ``trainer.testing.build_keras_bundle``. The shared fixed values (seed
scale, creation time, line sensors) are ``detector.testing``'s.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detector.bundle import write_bundle
from detector.errors import DataError
from detector.line.calibration import LineCalibration, SegmentCalibration
from detector.readings import DEFAULT_LIMITS, DEFAULT_SENSORS
from detector.scoring import FloatArray, ReconstructorFactory
from detector.testing import FIXED_CREATED_AT, default_scalers
from detector.topology import Topology
from detector.windows import WindowSpec


def linear_onnx_model(steps: int, sensors: int, factor: float = 0.5) -> bytes:
    """An ONNX graph computing ``factor · x`` on ``(batch, steps, sensors)`` float32 windows."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["windows", "factor"], ["reconstruction"])],
        "linear_reconstruction",
        [helper.make_tensor_value_info("windows", TensorProto.FLOAT, ["batch", steps, sensors])],
        [helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT, ["batch", steps, sensors])],
        [helper.make_tensor("factor", TensorProto.FLOAT, [], [factor])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every ONNX Runtime the project allows
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


@dataclass(frozen=True)
class LinearReconstructor:
    """``x_hat = factor · x``: the numpy twin of ``linear_onnx_model``, a ``Reconstructor`` that needs
    neither ONNX nor ONNX Runtime."""

    factor: float = 0.5

    def reconstruct(self, x_scaled: npt.ArrayLike) -> FloatArray:
        x = np.asarray(x_scaled, dtype=np.float32)
        if x.ndim != 3:
            raise DataError(f"windows must be (n, T, S), got shape {x.shape}")
        return x * np.float32(self.factor)


def linear_reconstructors(factor: float = 0.5) -> ReconstructorFactory:
    """A ``load_bundle`` factory serving any bundle with ``LinearReconstructor(factor)``; the bundle's
    ``model.onnx`` is verified (checksum) but not run. Pair it with ``build_linear_bundle(factor=...)``
    of the same factor and the scores are the ONNX model's."""

    def build(_model_path: Path, _window_shape: tuple[int, int]) -> LinearReconstructor:
        return LinearReconstructor(factor)

    return build


def example_line(
    stations: Sequence[str] = ("EST-01", "EST-02", "EST-03"),
    *,
    tank_area_m2: float = 250.0,
    length_km: float = 50.0,
    limit: float = 60.0,
) -> tuple[Topology, LineCalibration]:
    """One line through ``stations`` in order (breakout tanks of ``tank_area_m2`` everywhere, 12-inch
    pipe), with every segment given the same plain calibration; for ``build_linear_bundle(line=...)``
    (pass ``sensors=LINE_SENSORS``)."""
    topology = Topology.from_dict(
        {
            "format": 1,
            "line": [
                {
                    "id": "L1",
                    "station": [{"id": s, "tank_area_m2": tank_area_m2} for s in stations],
                    "segment": [
                        {
                            "upstream": up,
                            "downstream": down,
                            "length_km": length_km,
                            "inner_diameter_m": 0.3048,
                        }
                        for up, down in itertools.pairwise(stations)
                    ],
                }
            ],
        }
    )
    calibration = LineCalibration(
        {s.segment_id: SegmentCalibration(s.segment_id, limit=limit) for s in topology.segments},
        record={"note": "test calibration, not learned"},
    )
    return topology, calibration


def build_linear_bundle(
    out_dir: Path | str,
    *,
    factor: float = 0.5,
    threshold: float = 1.0,
    sensors: Sequence[str] = DEFAULT_SENSORS,
    window: WindowSpec | None = None,
    stations: Sequence[str] = (),
    model_version: str = "test-linear-1",
    aggregation: str = "mean",
    line: tuple[Topology, LineCalibration] | None = None,
) -> Path:
    """A bundle whose model is ``x_hat = factor · x_scaled`` (score = (1 - factor)² · mean(x_scaled²)).

    ``line`` (topology and its segment calibration) is stored as the manifest's ``line`` field, as the
    trainer's ``--topology`` does; ``write_bundle`` refuses a calibration that disagrees with the topology.
    """
    spec = window or WindowSpec()
    return write_bundle(
        out_dir,
        onnx_model=linear_onnx_model(spec.samples_per_window, len(sensors), factor),
        keras_model_file=None,
        model_version=model_version,
        sensors=sensors,
        window=spec,
        scalers=default_scalers(len(sensors), stations),
        aggregation=aggregation,
        threshold=threshold,
        calibration={"method": "fixed", "note": "test bundle, not calibrated"},
        training={"note": "no training: hand-made linear model"},
        limits={name: DEFAULT_LIMITS[name] for name in sensors if name in DEFAULT_LIMITS},
        line=line,
        model_card="# Test bundle\n\nA linear stand-in model for tests.\n",
        created_at=FIXED_CREATED_AT,
    )
