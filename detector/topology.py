"""The line's topology, declared: which stations a pipeline joins, in flow order, and what lies between.

A tap shows as flow missing *between* two stations, so the service can only balance a segment whose
two ends and whose buffers it knows. The topology file (TOML) says so::

    [[line]]
    id = "L1"
    clock_tolerance_s = 90.0      # optional: the largest offset between two stations' clocks (s)

    [[line.station]]
    id = "EST-01"
    tank_area_m2 = 250.0          # breakout tank: its level change enters the balance
    [[line.station]]
    id = "EST-02"
    tank_area_m2 = "none"         # tight line: no tank, the balance is flow (plus line pack) only
    [line.station.sensors]        # optional: reading fields named differently at this station
    flow = "flow_out"

    [[line.segment]]
    upstream = "EST-01"
    downstream = "EST-02"
    length_km = 52.3
    inner_diameter_m = 0.3048
    [[line.segment.meter]]        # optional: a metered delivery (legal offtake) or injection
    kind = "delivery"             # or "injection"
    station_id = "EST-02"         # the station whose readings carry the meter's flow
    sensor = "delivery_flow"      # that field's name (m3/h)
    km = 31.0                     # from the upstream station

Rules (each refusal names the field): station ids are unique across lines; a line lists at least
two stations; every station states ``tank_area_m2`` (a positive number, or ``"none"``); segments
join consecutive stations in the listed order, each pair once (so no cycle and no branch can be
declared); a meter's ``km`` lies inside its segment. Lines with no segment listed get none: a
segment is never balanced on guessed lengths. A line may state ``clock_tolerance_s`` (seconds,
0-600, default 90): the largest offset between any two of its stations' clocks; the line monitor
waits that much longer for a station whose clock runs behind (``detector.line.monitor``).

Pure: pydantic and the standard library only. ``centinela simulate`` writes one for the line it
simulated (``to_toml``), the trainer stores it in the bundle (``to_dict``), the service rebuilds it
from there (``Topology.from_dict``).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from detector.errors import ConfigError
from detector.readings import STATION_ID_PATTERN

TOPOLOGY_FORMAT = 1
LINE_ID_PATTERN = STATION_ID_PATTERN
# The reading fields a segment balance uses, by role; a station may map a role to another field name.
ROLES: tuple[str, ...] = ("flow", "tank_level", "pressure", "suction_pressure")
NO_TANK = "none"
# Refined products: 1.0-1.5 GPa; the line pack term uses this unless a segment says otherwise.
DEFAULT_BULK_MODULUS_GPA = 1.3
# The largest offset between any two stations' clocks on a line, when the file does not say: two
# clocks each within +-45 s (the simulator's default skew). The line monitor's lateness follows it.
DEFAULT_CLOCK_TOLERANCE_S = 90.0
MAX_CLOCK_TOLERANCE_S = 600.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationDecl(_Strict):
    """One station of a line: its id, its breakout tank (or none) and any renamed sensors."""

    id: str = Field(pattern=STATION_ID_PATTERN)
    tank_area_m2: float | Literal["none"]
    sensors: dict[str, str] = Field(default_factory=dict)

    @field_validator("tank_area_m2")
    @classmethod
    def _area_is_positive(cls, value: float | str) -> float | str:
        if isinstance(value, float | int) and not (math.isfinite(value) and value > 0):
            raise ValueError('must be a positive area in m2, or "none" for a tight-line station')
        return value

    @field_validator("sensors")
    @classmethod
    def _roles_are_known(cls, value: dict[str, str]) -> dict[str, str]:
        for role in value:
            if role not in ROLES:
                raise ValueError(f"{role!r} is not a sensor role (one of {', '.join(ROLES)})")
        return value

    @property
    def tank_area(self) -> float | None:
        """The tank's area in m², or None for a tight-line station."""
        return None if self.tank_area_m2 == NO_TANK else float(self.tank_area_m2)

    def sensor(self, role: str) -> str:
        """The reading field that carries ``role`` at this station."""
        return self.sensors.get(role, role)


class MeterDecl(_Strict):
    """A metered delivery (legal offtake) or injection along a segment."""

    kind: Literal["delivery", "injection"]
    station_id: str = Field(pattern=STATION_ID_PATTERN)
    sensor: str = Field(min_length=1)
    km: float = Field(ge=0)


class SegmentDecl(_Strict):
    """The pipe between two consecutive stations."""

    upstream: str
    downstream: str
    length_km: float = Field(gt=0, le=2000)
    inner_diameter_m: float = Field(gt=0, le=3)
    bulk_modulus_gpa: float = Field(default=DEFAULT_BULK_MODULUS_GPA, gt=0, le=10)
    meter: list[MeterDecl] = Field(default_factory=list)

    @model_validator(mode="after")
    def _meters_inside(self) -> SegmentDecl:
        for index, meter in enumerate(self.meter):
            if meter.km > self.length_km:
                raise ValueError(
                    f"meter[{index}].km = {meter.km:g} lies beyond the segment's "
                    f"length_km = {self.length_km:g}"
                )
        return self

    @property
    def segment_id(self) -> str:
        return segment_id(self.upstream, self.downstream)

    @property
    def volume_m3(self) -> float:
        return math.pi * self.inner_diameter_m**2 / 4.0 * self.length_km * 1000.0


class LineDecl(_Strict):
    id: str = Field(pattern=LINE_ID_PATTERN)
    # Seconds: how far apart two stations' clocks may stamp the same moment (RTU clock accuracy).
    clock_tolerance_s: float = Field(default=DEFAULT_CLOCK_TOLERANCE_S, ge=0, le=MAX_CLOCK_TOLERANCE_S)
    station: list[StationDecl] = Field(min_length=2)
    segment: list[SegmentDecl] = Field(default_factory=list)

    @model_validator(mode="after")
    def _segments_follow_the_stations(self) -> LineDecl:
        order = {station.id: index for index, station in enumerate(self.station)}
        if len(order) != len(self.station):
            raise ValueError("station: a station id is listed twice")
        seen: set[tuple[str, str]] = set()
        for index, segment in enumerate(self.segment):
            for end in ("upstream", "downstream"):
                if getattr(segment, end) not in order:
                    raise ValueError(
                        f"segment[{index}].{end}: unknown station {getattr(segment, end)!r} "
                        f"(line {self.id} lists {', '.join(order)})"
                    )
            up, down = order[segment.upstream], order[segment.downstream]
            if down != up + 1:
                raise ValueError(
                    f"segment[{index}]: {segment.upstream} -> {segment.downstream} does not join consecutive "
                    "stations in flow order (a cycle, a branch or a reversed pair)"
                )
            if (segment.upstream, segment.downstream) in seen:
                raise ValueError(f"segment[{index}]: {segment.segment_id} is declared twice")
            seen.add((segment.upstream, segment.downstream))
        return self


class _TopologyFile(_Strict):
    format: int = TOPOLOGY_FORMAT
    line: list[LineDecl] = Field(min_length=1)

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value != TOPOLOGY_FORMAT:
            raise ValueError(
                f"topology format {value} is not supported (this version reads {TOPOLOGY_FORMAT})"
            )
        return value

    @model_validator(mode="after")
    def _stations_in_one_line(self) -> _TopologyFile:
        owner: dict[str, str] = {}
        line_ids: set[str] = set()
        for line in self.line:
            if line.id in line_ids:
                raise ValueError(f"line: {line.id!r} is declared twice")
            line_ids.add(line.id)
            for station in line.station:
                if station.id in owner:
                    raise ValueError(
                        f"station {station.id!r} is in line {owner[station.id]!r} and in line {line.id!r}"
                    )
                owner[station.id] = line.id
        return self


def segment_id(upstream: str, downstream: str) -> str:
    """The segment's name on the wire and in metrics: ``EST-01>EST-02`` (the simulator's form)."""
    return f"{upstream}>{downstream}"


@dataclass(frozen=True, slots=True)
class Segment:
    """A declared segment with its ends resolved: what the segment state needs, in one place."""

    line_id: str
    upstream: StationDecl
    downstream: StationDecl
    decl: SegmentDecl

    @property
    def segment_id(self) -> str:
        return self.decl.segment_id

    @property
    def length_km(self) -> float:
        return self.decl.length_km


class Topology:
    """A validated topology; build with ``load_topology`` or ``Topology.from_dict``."""

    def __init__(self, declared: _TopologyFile) -> None:
        self._declared = declared
        self._line_of: dict[str, str] = {}
        self._stations: dict[str, StationDecl] = {}
        self._segments: list[Segment] = []
        for line in declared.line:
            by_id = {station.id: station for station in line.station}
            for station in line.station:
                self._line_of[station.id] = line.id
                self._stations[station.id] = station
            for decl in line.segment:
                self._segments.append(Segment(line.id, by_id[decl.upstream], by_id[decl.downstream], decl))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "topology") -> Topology:
        try:
            return cls(_TopologyFile.model_validate(dict(data)))
        except ValidationError as error:
            raise ConfigError(f"{where}: {_first_problem(error)}") from error

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (the bundle's manifest holds this)."""
        return self._declared.model_dump(mode="json", exclude_defaults=False)

    @property
    def lines(self) -> tuple[LineDecl, ...]:
        return tuple(self._declared.line)

    @property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(self._segments)

    @property
    def station_ids(self) -> frozenset[str]:
        return frozenset(self._stations)

    def line_of(self, station_id: str) -> str | None:
        """The line a station belongs to, or None for a station the topology does not know."""
        return self._line_of.get(station_id)

    def station(self, station_id: str) -> StationDecl:
        return self._stations[station_id]

    def segments_of(self, line_id: str) -> Iterator[Segment]:
        return (segment for segment in self._segments if segment.line_id == line_id)

    def required_sensors(self) -> frozenset[str]:
        """Every reading field the balance reads (renamed roles and meters included)."""
        fields = {station.sensor(role) for station in self._stations.values() for role in ROLES}
        for segment in self._segments:
            fields.update(meter.sensor for meter in segment.decl.meter)
        return frozenset(fields)

    def check_against(self, known_stations: frozenset[str], sensors: tuple[str, ...], where: str) -> None:
        """Refuse a topology that names stations or sensors the bundle does not know (names the field)."""
        if known_stations:
            unknown = sorted(self.station_ids - known_stations)
            if unknown:
                raise ConfigError(
                    f"{where}: station(s) {', '.join(unknown)} are not in the bundle's stations"
                )
        missing = sorted(field for field in self.required_sensors() if field not in sensors)
        if missing:
            raise ConfigError(
                f"{where}: sensor(s) {', '.join(missing)} used by the balance are not among the bundle's "
                f"sensors ({', '.join(sensors)})"
            )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Topology) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def to_toml(self) -> str:
        """The file form; ``load_topology`` reads it back to an equal topology."""
        out = [f"format = {TOPOLOGY_FORMAT}", ""]
        for line in self._declared.line:
            out += [
                "[[line]]",
                f"id = {_toml_str(line.id)}",
                f"clock_tolerance_s = {_toml_float(line.clock_tolerance_s)}",
                "",
            ]
            for station in line.station:
                area = _toml_str(NO_TANK) if station.tank_area is None else _toml_float(station.tank_area)
                out += ["[[line.station]]", f"id = {_toml_str(station.id)}", f"tank_area_m2 = {area}"]
                if station.sensors:
                    out += ["[line.station.sensors]"]
                    out += [f"{role} = {_toml_str(name)}" for role, name in sorted(station.sensors.items())]
                out.append("")
            for segment in line.segment:
                out += [
                    "[[line.segment]]",
                    f"upstream = {_toml_str(segment.upstream)}",
                    f"downstream = {_toml_str(segment.downstream)}",
                    f"length_km = {_toml_float(segment.length_km)}",
                    f"inner_diameter_m = {_toml_float(segment.inner_diameter_m)}",
                    f"bulk_modulus_gpa = {_toml_float(segment.bulk_modulus_gpa)}",
                ]
                for meter in segment.meter:
                    out += [
                        "[[line.segment.meter]]",
                        f"kind = {_toml_str(meter.kind)}",
                        f"station_id = {_toml_str(meter.station_id)}",
                        f"sensor = {_toml_str(meter.sensor)}",
                        f"km = {_toml_float(meter.km)}",
                    ]
                out.append("")
        return "\n".join(out).rstrip() + "\n"


def load_topology(path: Path | str) -> Topology:
    """Read and validate a topology file; a problem raises ``ConfigError`` naming the file and field."""
    source = Path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"topology file {source} does not exist") from error
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"topology file {source} cannot be read: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"topology file {source} is not valid TOML: {error}") from error
    return Topology.from_dict(data, where=f"topology file {source}")


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(file)"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}"


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_float(value: float) -> str:
    text = repr(float(value))
    return text if "." in text or "e" in text else text + ".0"
