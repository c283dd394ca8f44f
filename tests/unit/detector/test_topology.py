"""The declared line: what is accepted, what is refused (and that the refusal names the field)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from detector.errors import ConfigError
from detector.topology import Topology, load_topology, segment_id


def _line(**overrides: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "id": "L1",
        "station": [
            {"id": "EST-01", "tank_area_m2": 250.0},
            {"id": "EST-02", "tank_area_m2": 250.0},
            {"id": "EST-03", "tank_area_m2": "none", "sensors": {"flow": "flow_out"}},
        ],
        "segment": [
            {"upstream": "EST-01", "downstream": "EST-02", "length_km": 50.0, "inner_diameter_m": 0.3},
            {
                "upstream": "EST-02",
                "downstream": "EST-03",
                "length_km": 40.0,
                "inner_diameter_m": 0.3,
                "meter": [{"kind": "delivery", "station_id": "EST-03", "sensor": "offtake", "km": 12.5}],
            },
        ],
    }
    line.update(overrides)
    return line


def test_a_declared_line_resolves_its_segments_and_roles() -> None:
    topology = Topology.from_dict({"line": [_line()]})
    assert [s.segment_id for s in topology.segments] == ["EST-01>EST-02", "EST-02>EST-03"]
    assert topology.line_of("EST-02") == "L1"
    assert topology.line_of("EST-99") is None
    assert topology.station("EST-03").tank_area is None
    assert topology.station("EST-01").tank_area == 250.0
    assert topology.station("EST-03").sensor("flow") == "flow_out"
    assert topology.station("EST-03").sensor("tank_level") == "tank_level"
    assert "offtake" in topology.required_sensors()
    assert topology.segments[0].decl.volume_m3 == pytest.approx(3534.3, rel=1e-3)
    assert segment_id("A", "B") == "A>B"


def test_toml_round_trip(tmp_path: Path) -> None:
    topology = Topology.from_dict({"line": [_line()]})
    path = tmp_path / "topology.toml"
    path.write_text(topology.to_toml(), encoding="utf-8")
    assert load_topology(path) == topology
    assert Topology.from_dict(topology.to_dict()) == topology


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"station": [{"id": "EST-01"}, {"id": "EST-02", "tank_area_m2": 1.0}]}, "tank_area_m2"),
        (
            {"station": [{"id": "EST-01", "tank_area_m2": -5.0}, {"id": "EST-02", "tank_area_m2": 1.0}]},
            "tank_area_m2",
        ),
        ({"station": [{"id": "EST-01", "tank_area_m2": 1.0}]}, "station"),
        (
            {
                "segment": [
                    {"upstream": "EST-01", "downstream": "EST-09", "length_km": 5, "inner_diameter_m": 0.3}
                ]
            },
            "unknown station 'EST-09'",
        ),
        (
            {
                "segment": [
                    {"upstream": "EST-02", "downstream": "EST-01", "length_km": 5, "inner_diameter_m": 0.3}
                ]
            },
            "cycle",
        ),
        (
            {
                "segment": [
                    {"upstream": "EST-01", "downstream": "EST-03", "length_km": 5, "inner_diameter_m": 0.3}
                ]
            },
            "consecutive",
        ),
        (
            {
                "segment": [
                    {"upstream": "EST-01", "downstream": "EST-02", "length_km": 0, "inner_diameter_m": 0.3}
                ]
            },
            "length_km",
        ),
        (
            {
                "segment": [
                    {
                        "upstream": "EST-01",
                        "downstream": "EST-02",
                        "length_km": 5,
                        "inner_diameter_m": 0.3,
                        "meter": [{"kind": "delivery", "station_id": "EST-02", "sensor": "x", "km": 9}],
                    }
                ]
            },
            "meter[0].km",
        ),
        (
            {
                "station": [
                    {"id": "EST-01", "tank_area_m2": 1.0, "sensors": {"level": "x"}},
                    {"id": "EST-02", "tank_area_m2": 1.0},
                ]
            },
            "sensor role",
        ),
    ],
)
def test_bad_declarations_are_refused_naming_the_field(change: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        Topology.from_dict({"line": [_line(**change)]})


@pytest.mark.parametrize("tolerance", [-1.0, 600.5, "two minutes", float("nan")])
def test_a_bad_clock_tolerance_is_refused_naming_the_field(tolerance: Any) -> None:
    with pytest.raises(ConfigError, match=r"line\.0\.clock_tolerance_s"):
        Topology.from_dict({"line": [_line(clock_tolerance_s=tolerance)]})


def test_the_clock_tolerance_defaults_to_90_s_and_round_trips(tmp_path: Path) -> None:
    # A file (or a bundle's topology) written before the field existed: today's 90 s.
    assert Topology.from_dict({"line": [_line()]}).lines[0].clock_tolerance_s == 90.0
    topology = Topology.from_dict({"line": [_line(clock_tolerance_s=240)]})
    assert topology.lines[0].clock_tolerance_s == 240.0
    assert "clock_tolerance_s = 240.0" in topology.to_toml()
    path = tmp_path / "topology.toml"
    path.write_text(topology.to_toml(), encoding="utf-8")
    assert load_topology(path) == topology
    for edge in (0, 600):
        (line,) = Topology.from_dict({"line": [_line(clock_tolerance_s=edge)]}).lines
        assert line.clock_tolerance_s == edge


def test_a_station_in_two_lines_is_refused() -> None:
    second = _line(id="L2", segment=[])
    with pytest.raises(ConfigError, match="is in line 'L1' and in line 'L2'"):
        Topology.from_dict({"line": [_line(), second]})


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_topology(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[line]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_topology(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('colour = "red"\n[[line]]\nid = "L"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown\.toml"):
        load_topology(unknown)


def test_check_against_a_bundle_names_unknown_stations_and_sensors() -> None:
    topology = Topology.from_dict({"line": [_line()]})
    with pytest.raises(ConfigError, match="EST-03"):
        topology.check_against(frozenset({"EST-01", "EST-02"}), ("flow",), "here")
    with pytest.raises(ConfigError, match="offtake"):
        topology.check_against(
            frozenset(), ("flow", "flow_out", "tank_level", "pressure", "suction_pressure"), "here"
        )
