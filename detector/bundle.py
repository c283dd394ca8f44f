"""The model bundle: a directory of data (never code) that the trainer writes and the service loads.

Layout (nothing else is allowed; no subfolders, no symlinks)::

    manifest.json   format version, model version, sensors, window, scalers, threshold, checksums...
    model.onnx      the serving export (ONNX Runtime)
    model.keras     the trained Keras model (optional; the service never loads it)
    MODEL_CARD.md   human-readable notes (optional)
    manifest.sig    HMAC-SHA256 of manifest.json (optional; see ``detector.bundle_signature``)

``load_bundle`` verifies every file against the manifest's SHA-256 before anything is parsed beyond
the manifest itself, and refuses the bundle with a message naming the first problem it finds. Given a
verification key it first checks the manifest's signature. Whatever the key, a threshold far from the
calibration's recorded thresholds or sensor limits far beyond the training scalers' range are refused
as implausible (``PLAUSIBLE_FACTOR``, ``PLAUSIBLE_SCALES``): a manifest edited by hand, or by mistake.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from detector.bundle_signature import SIGNATURE, signature_file, verify
from detector.errors import BundleError, ConfigError, DataError
from detector.line.calibration import LineCalibration, SegmentCalibration
from detector.onnx_runtime import OnnxScorer
from detector.readings import ReadingParser, SensorLimits
from detector.scaling import Scaler, StationScalers
from detector.scoring import AGGREGATIONS, Reconstructor, ReconstructorFactory, reconstruction_errors
from detector.topology import Topology
from detector.windows import WindowSpec

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ONNX_MODEL = "model.onnx"
KERAS_MODEL = "model.keras"
MODEL_CARD = "MODEL_CARD.md"

# The only names a bundle may hold, with the largest size accepted for each (bytes). The manifest can
# be large: it carries one scaler per station (about 200 bytes each).
SIZE_LIMITS: dict[str, int] = {
    MANIFEST: 32 * 1024 * 1024,
    ONNX_MODEL: 512 * 1024 * 1024,
    KERAS_MODEL: 512 * 1024 * 1024,
    MODEL_CARD: 1024 * 1024,
    SIGNATURE: 4096,
}
REQUIRED_FILES = (MANIFEST, ONNX_MODEL)

_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WindowFields(_Strict):
    """``WindowSpec`` in seconds."""

    length: float = Field(gt=0)
    step: float = Field(gt=0)
    sampling: float = Field(gt=0)
    max_fill: float = Field(ge=0)
    min_coverage: float = Field(gt=0, le=1)
    allowed_lateness: float = Field(ge=0)

    @classmethod
    def of(cls, spec: WindowSpec) -> WindowFields:
        return cls(**spec.to_seconds())

    def spec(self) -> WindowSpec:
        return WindowSpec.from_seconds(self.model_dump())


class ScalerFields(_Strict):
    mean: list[float]
    scale: list[float]


class ScalersFields(_Strict):
    per_station: dict[str, ScalerFields] = Field(default_factory=dict)
    fallback: ScalerFields


class LimitFields(_Strict):
    low: float
    high: float


class Manifest(_Strict):
    """What a bundle is: everything the service needs besides the model weights."""

    format_version: int
    model_version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}$")
    created_at: AwareDatetime
    sensors: list[str] = Field(min_length=1)
    window: WindowFields
    scalers: ScalersFields
    aggregation: Literal["mean", "max", "topk"]
    topk: int = Field(default=5, ge=1)
    threshold: float = Field(gt=0)
    # Stations whose own normal windows need a higher threshold than ``threshold`` to keep the
    # false-alarm budget (never lower: the shared one passed the trainer's operating-point check).
    station_thresholds: dict[str, float] = Field(default_factory=dict)
    calibration: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    limits: dict[str, LimitFields] = Field(default_factory=dict)
    # The declared line and each segment's calibration (detector.topology, detector.line), or None:
    # {"topology": Topology.to_dict(), "calibration": LineCalibration.to_dict()}.
    line: dict[str, Any] | None = None
    files: dict[str, str]

    @field_validator("station_thresholds")
    @classmethod
    def _station_thresholds_are_positive(cls, value: dict[str, float]) -> dict[str, float]:
        for station, threshold in value.items():
            if not math.isfinite(threshold) or threshold <= 0:
                raise ValueError(
                    f"station_thresholds[{station!r}] must be a positive number, got {threshold}"
                )
        return value

    @field_validator("files")
    @classmethod
    def _files_are_known_and_hashed(cls, value: dict[str, str]) -> dict[str, str]:
        for name, digest in value.items():
            if name not in SIZE_LIMITS or name in {MANIFEST, SIGNATURE}:
                raise ValueError(f"files lists {name!r}, which a bundle may not hold")
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"files[{name!r}] is not a lowercase hex SHA-256")
        if ONNX_MODEL not in value:
            raise ValueError(f"files must list {ONNX_MODEL}")
        return value

    @field_validator("sensors")
    @classmethod
    def _sensors_are_unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("sensors must be unique")
        return value

    def station_scalers(self) -> StationScalers:
        return StationScalers.from_dict(self.scalers.model_dump())

    def sensor_limits(self) -> dict[str, SensorLimits]:
        return {name: SensorLimits(limit.low, limit.high) for name, limit in self.limits.items()}


@dataclass(frozen=True, slots=True)
class ScoreBatch:
    """One score per window and each sensor's share of its error (rows sum to 1)."""

    scores: npt.NDArray[np.float64]
    contributions: npt.NDArray[np.float64]


class Bundle:
    """A verified bundle, ready to score raw windows with its model's ``Reconstructor`` (any
    implementation of the port: ONNX Runtime in service, a numpy stand-in in tests)."""

    def __init__(self, path: Path, manifest: Manifest, reconstructor: Reconstructor) -> None:
        self.path = path
        self.manifest = manifest
        self.reconstructor = reconstructor
        self.scalers = manifest.station_scalers()
        self.window_spec = manifest.window.spec()
        self.sensors: tuple[str, ...] = tuple(manifest.sensors)
        self.topology, self.line_calibration = _line_of(manifest, path)

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    def threshold_for(self, station_id: str) -> float:
        """The station's own threshold where the bundle has one, else the shared one."""
        return self.manifest.station_thresholds.get(station_id, self.manifest.threshold)

    @property
    def model_version(self) -> str:
        return self.manifest.model_version

    def parser(self, max_bytes: int = 65536) -> ReadingParser:
        """A reading parser for this bundle's sensors and sanity limits."""
        return ReadingParser(self.sensors, self.manifest.sensor_limits(), max_bytes=max_bytes)

    def score(self, station_ids: Sequence[str], windows_raw: npt.ArrayLike) -> ScoreBatch:
        """Score raw (unscaled) windows ``(n, T, S)`` of any mix of stations in one batch; a model that
        fails on the batch raises ``BundleError``."""
        scaled = self.scalers.transform_windows(station_ids, windows_raw)
        if len(scaled) == 0:
            return ScoreBatch(np.empty(0), np.empty((0, len(self.sensors))))
        rebuilt = self.reconstructor.reconstruct(scaled)
        scores, contributions = reconstruction_errors(
            scaled, rebuilt, self.manifest.aggregation, self.manifest.topk
        )
        return ScoreBatch(scores, contributions)


def _line_of(manifest: Manifest, root: Path) -> tuple[Topology | None, LineCalibration | None]:
    """The bundle's declared line and its calibration; both or neither, checked against the bundle.

    Refused (``BundleError`` naming the field): a topology that is invalid or names stations or
    sensors the bundle lacks; a calibration that is malformed, lacks a segment of the topology, files
    a segment under another's name, or has a non-positive spread or decision limit.
    """
    if manifest.line is None:
        return None, None
    where = f"bundle {root}: line"
    try:
        topology = Topology.from_dict(manifest.line["topology"], where=f"{where}.topology")
        topology.check_against(
            frozenset(manifest.scalers.per_station), tuple(manifest.sensors), f"{where}.topology"
        )
        raw = manifest.line["calibration"]
        segments = raw["segments"] if isinstance(raw, Mapping) else None
        if not isinstance(segments, Mapping):
            raise BundleError(f"{where}.calibration.segments must be an object of segment calibrations")
        for name, fields in segments.items():
            _check_segment_calibration(f"{where}.calibration.segments[{name!r}]", name, fields)
        calibration = LineCalibration.from_dict(raw)
    except KeyError as error:
        raise BundleError(f"{where} lacks {error.args[0]!r}") from error
    except ConfigError as error:
        raise BundleError(str(error)) from error
    except BundleError as error:
        message = str(error)
        raise BundleError(
            message if message.startswith(where) else f"{where}.calibration: {message}"
        ) from error
    for segment in topology.segments:
        if segment.segment_id not in calibration.segments:
            raise BundleError(f"{where}.calibration has no segment {segment.segment_id} of the topology")
    return topology, calibration


def _check_segment_calibration(where: str, name: str, fields: Any) -> None:
    """One segment's figures: well formed, filed under its own id, positive spreads and limit."""
    if not isinstance(fields, Mapping):
        raise BundleError(f"{where} must be an object")
    try:
        segment = SegmentCalibration.from_dict(fields)
    except BundleError as error:
        raise BundleError(f"{where}: {error}") from error
    if segment.segment_id != name:
        raise BundleError(f"{where}: segment_id is {segment.segment_id!r}, not {name!r}")
    for field, value in (("sigma_m3h", segment.sigma_m3h), ("limit", segment.limit)):
        if not (math.isfinite(value) and value > 0):
            raise BundleError(f"{where}.{field} must be a positive number, got {value!r}")
    if not (math.isfinite(segment.drift_m3h) and segment.drift_m3h >= 0):
        raise BundleError(f"{where}.drift_m3h must be zero or positive, got {segment.drift_m3h!r}")
    # The test divides each window's cumulative balance by its spread: a zero would alarm on noise.
    for index, (minutes, spread) in enumerate(zip(segment.windows, segment.window_sigma_m3, strict=True)):
        if minutes < 1 or not (math.isfinite(spread) and spread > 0):
            raise BundleError(
                f"{where}: window {index} ({minutes} min, window_sigma_m3 {spread!r}) needs a positive "
                "length and spread"
            )


def _check_tree(root: Path) -> dict[str, Path]:
    """Every entry of the bundle folder, refusing anything but the allowed plain files."""
    found: dict[str, Path] = {}
    try:
        entries = list(os.scandir(root))
    except OSError as error:
        raise BundleError(f"bundle {root}: cannot list the folder: {error.strerror}") from error
    for entry in entries:
        if entry.is_symlink():
            raise BundleError(f"bundle {root}: {entry.name} is a symlink; a bundle holds plain files only")
        if entry.is_dir(follow_symlinks=False):
            raise BundleError(f"bundle {root}: unexpected folder {entry.name}/")
        if not stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
            raise BundleError(f"bundle {root}: {entry.name} is not a regular file")
        if entry.name not in SIZE_LIMITS:
            allowed = ", ".join(SIZE_LIMITS)
            raise BundleError(f"bundle {root}: extra file {entry.name} (allowed: {allowed})")
        size = entry.stat(follow_symlinks=False).st_size
        if size > SIZE_LIMITS[entry.name]:
            raise BundleError(
                f"bundle {root}: {entry.name} is {size} bytes, over the limit of {SIZE_LIMITS[entry.name]}"
            )
        found[entry.name] = Path(entry.path)
    for name in REQUIRED_FILES:
        if name not in found:
            raise BundleError(f"bundle {root}: missing file {name}")
    return found


def _read_manifest(path: Path, content: bytes | None = None) -> Manifest:
    try:
        raw = orjson.loads(path.read_bytes() if content is None else content)
    except (OSError, orjson.JSONDecodeError) as error:
        raise BundleError(f"bundle {path.parent}: {MANIFEST} is not valid JSON: {error}") from error
    if not isinstance(raw, dict):
        raise BundleError(f"bundle {path.parent}: {MANIFEST} must be a JSON object")
    version = raw.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise BundleError(
            f"bundle {path.parent}: unknown format version {version!r} (this build reads {FORMAT_VERSION})"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BundleError(f"bundle {path.parent}: invalid manifest at {where}: {first['msg']}") from error


def _check_consistency(root: Path, manifest: Manifest) -> None:
    n_sensors = len(manifest.sensors)
    scalers = [("fallback", manifest.scalers.fallback), *manifest.scalers.per_station.items()]
    for station, scaler in scalers:
        if len(scaler.mean) != n_sensors or len(scaler.scale) != n_sensors:
            raise BundleError(f"bundle {root}: scaler of {station} does not have {n_sensors} sensors")
    for name, limit in manifest.limits.items():
        if name not in manifest.sensors:
            raise BundleError(f"bundle {root}: limits name unknown sensor {name!r}")
        if not limit.low <= limit.high:
            raise BundleError(f"bundle {root}: limits of {name} have low > high")
    if not math.isfinite(manifest.threshold):
        raise BundleError(f"bundle {root}: threshold must be finite")
    try:
        manifest.window.spec()
    except Exception as error:
        raise BundleError(f"bundle {root}: invalid window: {error}") from error
    _check_plausible(root, manifest)


# A threshold more than this factor outside the range of thresholds the calibration recorded (the
# chosen one and every strategy's) is refused: a x1000 edit served for hours before this existed.
PLAUSIBLE_FACTOR = 10.0
# A sensor limit is refused beyond the widest training scaler's mean plus this many of its scales
# (or 1,000 times its mean): limits of 1e12 accept anything, which is what limits are there to stop.
PLAUSIBLE_SCALES = 1e4
PLAUSIBLE_MEANS = 1e3
# Limits within this magnitude are never judged: a sensor nearly constant in training (a pump that
# stayed off) has a tiny mean and scale, and the default limits must still pass.
PLAUSIBLE_FLOOR = 1e6


def recorded_thresholds(calibration: Mapping[str, Any]) -> list[float]:
    """The positive finite thresholds a trainer's calibration record holds (none in a hand-made one)."""
    found = [calibration.get("threshold")]
    strategies = calibration.get("strategies")
    if isinstance(strategies, list):
        found += [item.get("threshold") for item in strategies if isinstance(item, Mapping)]
    return [
        float(value)
        for value in found
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ]


def _check_plausible(root: Path, manifest: Manifest) -> None:
    recorded = recorded_thresholds(manifest.calibration)
    if recorded:
        low, high = min(recorded) / PLAUSIBLE_FACTOR, max(recorded) * PLAUSIBLE_FACTOR
        if not low <= manifest.threshold <= high:
            raise BundleError(
                f"bundle {root}: implausible threshold {manifest.threshold:g}: the calibration recorded "
                f"{min(recorded):g}..{max(recorded):g}, so it must lie in [{low:g}, {high:g}]"
            )
    for station, threshold in manifest.station_thresholds.items():
        if not manifest.threshold <= threshold <= manifest.threshold * PLAUSIBLE_FACTOR:
            raise BundleError(
                f"bundle {root}: implausible station_thresholds[{station!r}] {threshold:g}: a station's "
                f"threshold lies between the shared {manifest.threshold:g} and {PLAUSIBLE_FACTOR:g} times it"
            )
    scalers = [manifest.scalers.fallback, *manifest.scalers.per_station.values()]
    for index, name in enumerate(manifest.sensors):
        limit = manifest.limits.get(name)
        if limit is None:
            continue
        reach = max(
            PLAUSIBLE_FLOOR,
            *(
                abs(s.mean[index])
                + max(PLAUSIBLE_SCALES * s.scale[index], PLAUSIBLE_MEANS * max(abs(s.mean[index]), 1.0))
                for s in scalers
            ),
        )
        for side, value in (("low", limit.low), ("high", limit.high)):
            if abs(value) > reach:
                raise BundleError(
                    f"bundle {root}: implausible limits.{name}.{side} {value:g}: the training scalers "
                    f"put {name} within ±{reach:g}"
                )


def load_bundle(
    path: Path | str,
    expected_sensors: Sequence[str] | None = None,
    *,
    reconstructor_factory: ReconstructorFactory = OnnxScorer.from_path,
    verify_key: bytes | None = None,
) -> Bundle:
    """Verify a bundle folder and load its serving model; ``BundleError`` says what is wrong.

    ``reconstructor_factory`` turns the verified ``model.onnx`` and the manifest's window geometry
    ``(T, S)`` into the bundle's ``Reconstructor`` (default: ONNX Runtime, two lanes; the service
    passes ``detector.onnx_runtime.onnx_scorers`` built from its settings). The folder itself may be
    reached through a symlink (a ``current -> v7`` deployment); nothing inside it may be one. With
    ``verify_key``, an unsigned bundle, or one whose ``manifest.sig`` is not that key's signature of
    the manifest, is refused before the manifest is parsed.
    """
    root = Path(path)
    if not root.exists():
        raise BundleError(f"bundle {root} does not exist")
    if not root.is_dir():
        raise BundleError(f"bundle {root} is not a folder")
    root = root.resolve()
    found = _check_tree(root)
    try:
        content = found[MANIFEST].read_bytes()  # read once: what is verified is what is parsed
        signature = found[SIGNATURE].read_bytes() if SIGNATURE in found else None
    except OSError as error:
        raise BundleError(f"bundle {root}: cannot read the manifest: {error.strerror}") from error
    if verify_key is not None:
        verify(root, content, signature, verify_key)
    manifest = _read_manifest(found[MANIFEST], content)
    for name in manifest.files:
        if name not in found:
            raise BundleError(f"bundle {root}: missing file {name} (listed in the manifest)")
    for name in found:
        if name not in {MANIFEST, SIGNATURE} and name not in manifest.files:
            raise BundleError(f"bundle {root}: extra file {name} (not listed in the manifest)")
    for name, expected in manifest.files.items():
        actual = sha256_file(found[name])
        if actual != expected:
            raise BundleError(
                f"bundle {root}: checksum mismatch for {name} "
                f"(manifest {expected[:12]}…, file {actual[:12]}…)"
            )
    if expected_sensors is not None and list(expected_sensors) != manifest.sensors:
        raise BundleError(
            f"bundle {root}: sensors mismatch: bundle has {manifest.sensors}, "
            f"expected {list(expected_sensors)}"
        )
    _check_consistency(root, manifest)
    _line_of(manifest, root)
    window_shape = (manifest.window.spec().samples_per_window, len(manifest.sensors))
    try:
        reconstructor = reconstructor_factory(found[ONNX_MODEL], window_shape)
    except BundleError as error:
        raise BundleError(f"bundle {root}: {ONNX_MODEL}: {error}") from error
    _check_model_shape(root, reconstructor, window_shape)
    return Bundle(root, manifest, reconstructor)


def _check_model_shape(root: Path, reconstructor: Reconstructor, window_shape: tuple[int, int]) -> None:
    """One all-zero window (the scaled mean) through the model: right output shape, finite values."""
    try:
        probe = np.asarray(reconstructor.reconstruct(np.zeros((1, *window_shape), dtype=np.float32)))
    except (BundleError, DataError) as error:
        raise BundleError(f"bundle {root}: {ONNX_MODEL} fails on one window: {error}") from error
    if probe.shape != (1, *window_shape):
        raise BundleError(
            f"bundle {root}: {ONNX_MODEL} fails on one window: the model returned shape {probe.shape} "
            f"for input {(1, *window_shape)}"
        )
    if not np.isfinite(probe).all():
        raise BundleError(f"bundle {root}: {ONNX_MODEL} returns non-finite values for the mean window")


def plain_json(value: Any, where: str = "value") -> Any:  # noqa: PLR0911 - one return per JSON type
    """``value`` as plain JSON data: numpy scalars and arrays become numbers and lists, tuples lists,
    datetimes RFC 3339 strings, and NaN or infinity ``null`` (JSON has neither)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.generic):
        return plain_json(value.item(), where)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return plain_json(value.tolist(), where)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise BundleError(f"{where} is a naive datetime")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(key): plain_json(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise BundleError(f"{where} has type {type(value).__name__}, which a manifest cannot hold")


def write_bundle(
    out_dir: Path | str,
    *,
    onnx_model: bytes,
    keras_model_file: Path | None,
    model_version: str,
    sensors: Sequence[str],
    window: WindowSpec,
    scalers: StationScalers,
    aggregation: str,
    threshold: float,
    topk: int = 5,
    station_thresholds: Mapping[str, float] | None = None,
    calibration: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    limits: Mapping[str, SensorLimits] | None = None,
    line: tuple[Topology, LineCalibration] | None = None,
    model_card: str | None = None,
    created_at: datetime | None = None,
    overwrite: bool = False,
    signing_key: bytes | None = None,
) -> Path:
    """Write a bundle atomically: files into a temporary sibling folder, manifest last, then rename.

    A reader (the service's hot reload) therefore sees either the old bundle or the complete new one.
    With ``signing_key``, ``manifest.sig`` signs the manifest (``detector.bundle_signature``).
    """
    target = Path(out_dir)
    if aggregation not in AGGREGATIONS:
        raise BundleError(f"unknown aggregation {aggregation!r}")
    if target.exists() and not overwrite:
        raise BundleError(f"bundle {target} already exists (pass overwrite=True to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        files: dict[str, str] = {}
        (staging / ONNX_MODEL).write_bytes(onnx_model)
        files[ONNX_MODEL] = sha256_file(staging / ONNX_MODEL)
        if keras_model_file is not None:
            shutil.copyfile(keras_model_file, staging / KERAS_MODEL)
            files[KERAS_MODEL] = sha256_file(staging / KERAS_MODEL)
        if model_card is not None:
            (staging / MODEL_CARD).write_text(model_card, encoding="utf-8")
            files[MODEL_CARD] = sha256_file(staging / MODEL_CARD)
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            model_version=model_version,
            created_at=created_at or datetime.now(UTC),
            sensors=list(sensors),
            window=WindowFields.of(window),
            scalers=ScalersFields.model_validate(scalers.to_dict()),
            aggregation=aggregation,  # type: ignore[arg-type]  # checked against AGGREGATIONS above
            topk=int(topk),
            threshold=float(threshold),
            station_thresholds={str(k): float(v) for k, v in (station_thresholds or {}).items()},
            calibration=plain_json(dict(calibration or {}), "calibration"),
            training=plain_json(dict(training or {}), "training"),
            limits={name: LimitFields(low=lim.low, high=lim.high) for name, lim in (limits or {}).items()},
            line=None if line is None else {"topology": line[0].to_dict(), "calibration": line[1].to_dict()},
            files=files,
        )
        _check_consistency(target, manifest)
        _line_of(manifest, target)
        manifest_bytes = orjson.dumps(manifest.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
        (staging / MANIFEST).write_bytes(manifest_bytes + b"\n")
        if signing_key is not None:
            (staging / SIGNATURE).write_bytes(signature_file(manifest_bytes + b"\n", signing_key))
        os.chmod(staging, 0o755)
        _swap_into_place(staging, target)
    except ValidationError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundleError(f"bundle {target}: invalid manifest field: {error.errors()[0]['msg']}") from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def sign_bundle(path: Path | str, key: bytes) -> Path:
    """Sign the bundle at ``path`` as it is (its ``manifest.sig`` replaced atomically); for a bundle
    written without a key. Check it first: this signs whatever the manifest says."""
    root = Path(path).resolve()
    content = (root / MANIFEST).read_bytes()
    staging = root / f".{SIGNATURE}.tmp"
    staging.write_bytes(signature_file(content, key))
    staging.replace(root / SIGNATURE)
    return root


def _swap_into_place(staging: Path, target: Path) -> None:
    if not target.exists():
        staging.rename(target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    retired.rmdir()
    target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def single_scaler(mean: npt.ArrayLike, scale: npt.ArrayLike) -> StationScalers:
    """Scalers with only a fallback: every station shares one scaler."""
    return StationScalers(per_station={}, fallback=Scaler(np.asarray(mean), np.asarray(scale)))
