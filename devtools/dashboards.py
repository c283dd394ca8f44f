"""Grafana dashboards as code: ``centinela dashboards`` writes ``deploy/grafana/dashboards/*.json``.

The JSON files are generated so every panel has the same datasource, units and layout rules, and so
the PromQL of every panel can be listed (:func:`panel_queries`) and checked against a real
Prometheus by the integration tests. Each board is a :class:`Board` row whose panels are a table of
:class:`Panel` rows (kind, title, description, queries, size, unit, colour steps); one
builder, :func:`build`, turns a board into JSON, and what is the same for every panel of a kind
(stat and bar gauge queries are instant, a time series has its legend as a table) is a rule of the
builder, not repeated in the rows; so is where a panel goes (:func:`layout`: its size and the panels
before it decide). Every panel queries the board's ``$datasource`` variable, whose
default is the data source docker-compose provisions, so the same files are provisioned by compose
and imported as they are into any other Grafana (docs/deploy.md). Edit this module, never the JSON;
``--check`` fails when the committed files differ from what this module writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import typer

DASHBOARDS_DIR = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards"
# Every panel queries the data source the dashboard's `datasource` variable names, so the JSON can be
# imported into any Grafana (the variable offers its Prometheus data sources, the default first).
DATASOURCE_VARIABLE_NAME = "datasource"
DATASOURCE = {"type": "prometheus", "uid": f"${{{DATASOURCE_VARIABLE_NAME}}}"}
# The variable's initial value: the data source docker-compose provisions. Must match the uid in
# deploy/grafana/provisioning/datasources/prometheus.yml; a Grafana without it offers its own.
PROVISIONED_DATASOURCE_UID = "centinela-prometheus"
SCHEMA_VERSION = 39
# Scraped job name of the detectors, as in deploy/prometheus/prometheus.yml and the alert rules.
DETECTOR_JOB = "centinela"

GREEN, YELLOW, ORANGE, RED, BLUE = "green", "yellow", "orange", "red", "blue"

Json = dict[str, Any]
Size = tuple[int, int]  # w, h in Grafana's grid units
Grid = tuple[int, int, int, int]  # x, y, w, h on Grafana's 24-column grid
GRID_COLUMNS = 24
Steps = tuple[tuple[float | None, str], ...]  # (lower bound, colour); None is the base step

# Colour steps the boards share.
PLAIN: Steps = ((None, GREEN),)
INFO: Steps = ((None, BLUE),)
RED_FROM_1: Steps = ((None, GREEN), (1, RED))
ORANGE_FROM_1: Steps = ((None, GREEN), (1, ORANGE))
GREEN_FROM_1: Steps = ((None, RED), (1, GREEN))
STATUS_STEPS: Steps = ((None, GREEN), (1, ORANGE), (2, RED))
# Readings come every minute: five minutes without one is late, fifteen is a gap.
FRESHNESS_STEPS: Steps = ((None, GREEN), (300, YELLOW), (900, RED))

# Panel kinds whose queries ask for the value now (instant), not a series over the time range.
INSTANT_KINDS = frozenset({"stat", "bargauge"})
# Kinds coloured by their thresholds; the others take Grafana's palette per series.
THRESHOLD_COLOURED_KINDS = frozenset({"stat", "bargauge", "state-timeline"})


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel; ``legend`` is Grafana's legend format (``{{station}}``)."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """One row of a board's panel table; what it leaves out takes its kind's defaults."""

    kind: str  # Grafana panel type: stat, timeseries, bargauge, state-timeline, text
    title: str
    description: str
    queries: tuple[Query, ...]
    size: Size  # where it goes follows from the sizes before it (layout)
    unit: str = "short"
    thresholds: Steps = PLAIN
    mappings: tuple[Json, ...] = ()
    options: Mapping[str, Any] | None = None  # None: the kind's defaults (_DEFAULT_OPTIONS)
    custom: Mapping[str, Any] = field(default_factory=dict)
    overrides: tuple[Json, ...] = ()
    decimals: int | None = None
    no_value: str | None = None  # what the panel says when its query returns nothing
    content: str = ""  # text panels only

    def sized(self, width: int, height: int) -> Panel:
        """The same panel in another size (a panel two boards share)."""
        return replace(self, size=(width, height))


@dataclass(frozen=True)
class Board:
    """One dashboard: its identity, its panel table and the variables its queries use."""

    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    variables: tuple[Json, ...] = ()
    time_from: str = "now-6h"


@dataclass(frozen=True)
class PanelQuery:
    """Where a PromQL expression lives, for error messages of the checks that run it."""

    dashboard: str
    panel: str
    expr: str


def value_map(*entries: tuple[int, str, str]) -> Json:
    """A Grafana value mapping: value -> (text, colour)."""
    return {
        "type": "value",
        "options": {
            str(value): {"text": text, "color": color, "index": i}
            for i, (value, text, color) in enumerate(entries)
        },
    }


def _stat_options(text_mode: str = "value", color_mode: str = "background") -> Json:
    return {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": color_mode,
        "graphMode": "none",
        "textMode": text_mode,
        "justifyMode": "center",
        "orientation": "auto",
        "wideLayout": True,
    }


STAT_WITH_NAMES = _stat_options(text_mode="value_and_name")
BARGAUGE_OPTIONS: Json = {
    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    "orientation": "horizontal",
    "displayMode": "basic",
    "showUnfilled": True,
}
STATE_TIMELINE_OPTIONS: Json = {
    "showValue": "never",
    "rowHeight": 0.8,
    "mergeValues": True,
    "legend": {"showLegend": False},
}
TIMESERIES_OPTIONS: Json = {
    "legend": {
        "displayMode": "table",
        "placement": "right",
        "calcs": ["lastNotNull", "max"],
        "showLegend": True,
    },
    "tooltip": {"mode": "multi", "sort": "desc"},
}
# Options of a panel that names none, by kind.
_DEFAULT_OPTIONS: Mapping[str, Json] = {
    "timeseries": TIMESERIES_OPTIONS,
    "bargauge": BARGAUGE_OPTIONS,
    "state-timeline": STATE_TIMELINE_OPTIONS,
}
# A dashed series: a limit or a threshold drawn beside the value it bounds.
DASHED_LINE = {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}
# Threshold steps drawn as dashed lines across a time series.
DASHED_THRESHOLDS = {"thresholdsStyle": {"mode": "dashed"}}


def _thresholds(steps: Steps) -> Json:
    return {"mode": "absolute", "steps": [{"value": value, "color": color} for value, color in steps]}


def layout(sizes: Sequence[Size]) -> list[Grid]:
    """Where each panel goes, in table order: as high as it fits, then as far left (the gravity
    Grafana applies itself), so a board's table gives sizes and never coordinates.

    Raises ValueError for a width outside 1..24 or a height below 1.
    """
    tops = [0] * GRID_COLUMNS  # the first free row of each column
    placed = []
    for width, height in sizes:
        if not (0 < width <= GRID_COLUMNS and height > 0):
            raise ValueError(f"panel size {width}x{height}: width must be 1..{GRID_COLUMNS}, height >= 1")
        y, x = min((max(tops[x : x + width]), x) for x in range(GRID_COLUMNS - width + 1))
        tops[x : x + width] = [y + height] * width
        placed.append((x, y, width, height))
    return placed


def _render_panel(panel: Panel, panel_id: int, grid: Grid) -> Json:
    x, y, w, h = grid
    body: Json = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
    }
    if panel.kind == "text":
        body["options"] = {"mode": "markdown", "content": panel.content}
        return body
    defaults: Json = {
        "unit": panel.unit,
        "thresholds": _thresholds(panel.thresholds),
        "mappings": list(panel.mappings),
        "color": {"mode": "thresholds" if panel.kind in THRESHOLD_COLOURED_KINDS else "palette-classic"},
    }
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.no_value is not None:
        defaults["noValue"] = panel.no_value
    if panel.custom:
        defaults["custom"] = dict(panel.custom)
    body["datasource"] = DATASOURCE
    body["fieldConfig"] = {"defaults": defaults, "overrides": list(panel.overrides)}
    body["options"] = dict(
        panel.options if panel.options is not None else _DEFAULT_OPTIONS.get(panel.kind, {})
    )
    instant = panel.kind in INSTANT_KINDS
    body["targets"] = [
        {
            "refId": chr(ord("A") + i),
            "datasource": DATASOURCE,
            "expr": query.expr,
            "legendFormat": query.legend,
            "instant": instant,
            "range": not instant,
        }
        for i, query in enumerate(panel.queries)
    ]
    return body


DATASOURCE_VARIABLE: Json = {
    "name": DATASOURCE_VARIABLE_NAME,
    "label": "Data source",
    "type": "datasource",
    "query": "prometheus",
    "regex": "",
    "current": {"selected": False, "text": "Prometheus", "value": PROVISIONED_DATASOURCE_UID},
    "refresh": 1,
    "hide": 0,
    "includeAll": False,
    "multi": False,
    "options": [],
}


def build(board: Board) -> Json:
    """The Grafana JSON of one board; panel ids follow the table's order from 1."""
    return {
        "uid": board.uid,
        "title": board.title,
        "description": board.description,
        "tags": ["centinela"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": board.time_from, "to": "now"},
        "links": [
            {
                "type": "dashboards",
                "tags": ["centinela"],
                "asDropdown": False,
                "title": "Centinela",
                "includeVars": False,
            }
        ],
        "annotations": {"list": []},
        "templating": {"list": [DATASOURCE_VARIABLE, *board.variables]},
        "panels": [
            _render_panel(panel, i + 1, grid)
            for i, (panel, grid) in enumerate(
                zip(board.panels, layout([panel.size for panel in board.panels]), strict=True)
            )
        ],
    }


# A station's status code: 2 for an open incident, +1 when no new reading arrived for 15 minutes
# (the window of the CentinelaStationSilent alert). The stale copy a detector keeps of a station it
# lost in a rebalance must not decide: max of the incident flag, changes of the freshest timestamp.
STATION_STATUS = (
    "max by (station) (2 * centinela_incident_open)\n"
    "+ max by (station) (changes(centinela_last_reading_timestamp_seconds[15m]) == bool 0)"
)
STATION_STATUS_MAPPINGS = (
    value_map((0, "OK", GREEN), (1, "NO DATA", ORANGE), (2, "INCIDENT", RED), (3, "INCIDENT, NO DATA", RED)),
)
INCIDENT_MAPPINGS = (value_map((0, "normal", GREEN), (1, "incident", RED)),)


# A segment's status code: 2 while its tap incident is open, +1 while its balance is held (degraded: a
# meter fault or a silent station, so the segment is blind). max by segment, as for stations.
SEGMENT_STATUS = (
    "max by (segment) (2 * centinela_segment_incident_open)\n+ max by (segment) (centinela_segment_degraded)"
)
SEGMENT_STATUS_MAPPINGS = (
    value_map((0, "OK", GREEN), (1, "DEGRADED", ORANGE), (2, "TAP", RED), (3, "TAP, DEGRADED", RED)),
)
NO_LINE = "no line topology in the bundle"

# Panels on more than one board, in their overview size (Panel.sized gives another).
SEGMENT_TILES = Panel(
    "stat",
    "Segments",
    "Every segment of the bundle's line topology: TAP while a tap incident is open, DEGRADED while "
    "the segment's balance is held because a flow or level meter is faulty or a station is silent "
    "(the segment cannot see a tap then).",
    (Query(SEGMENT_STATUS, "{{segment}}"),),
    (16, 5),
    thresholds=STATUS_STEPS,
    mappings=SEGMENT_STATUS_MAPPINGS,
    options=STAT_WITH_NAMES,
    no_value=NO_LINE,
)
OPEN_TAPS = Panel(
    "stat",
    "Open tap incidents",
    "Segments with a tap incident open now.",
    (Query("sum(max by (segment) (centinela_segment_incident_open))"),),
    (4, 5),
    thresholds=RED_FROM_1,
    no_value=NO_LINE,
)
DEGRADED_SEGMENTS = Panel(
    "stat",
    "Degraded segments",
    "Segments whose balance is held (blind to taps) now.",
    (Query("sum(max by (segment) (centinela_segment_degraded))"),),
    (4, 5),
    thresholds=ORANGE_FROM_1,
    no_value=NO_LINE,
)
DETECTORS_UP = Panel(
    "stat",
    "Detectors up",
    "Detector instances Prometheus scrapes successfully.",
    (Query(f'sum(up{{job="{DETECTOR_JOB}"}})'),),
    (4, 4),
    thresholds=GREEN_FROM_1,
)

OVERVIEW = Board(
    "centinela-overview",
    "Centinela / Operations overview",
    "Every station and segment at a glance: incidents, taps, degraded balances, alert rate, data freshness.",
    (
        Panel(
            "stat",
            "Stations",
            "Every station the detectors know: INCIDENT while an incident is open, NO DATA after 15 minutes "
            "without a new reading.",
            (Query(STATION_STATUS, "{{station}}"),),
            (16, 8),
            thresholds=STATUS_STEPS,
            mappings=STATION_STATUS_MAPPINGS,
            options=STAT_WITH_NAMES,
        ),
        Panel(
            "stat",
            "Open incidents",
            "Incidents open now, all stations and segments.",
            (Query("sum(centinela_open_incidents)"),),
            (4, 4),
            thresholds=RED_FROM_1,
        ),
        Panel(
            "stat",
            "Stations reporting",
            "Stations with at least one reading since the detectors started.",
            (Query("count(max by (station) (centinela_last_reading_timestamp_seconds))"),),
            (4, 4),
            thresholds=INFO,
        ),
        DETECTORS_UP,
        Panel(
            "stat",
            "Kafka",
            "Whether every detector reaches the Kafka cluster.",
            (Query("min(centinela_broker_up)"),),
            (4, 4),
            mappings=(value_map((0, "LOST", RED), (1, "OK", GREEN)),),
            thresholds=GREEN_FROM_1,
        ),
        SEGMENT_TILES,
        OPEN_TAPS,
        DEGRADED_SEGMENTS,
        Panel(
            "state-timeline",
            "Incidents",
            "When each station had an incident open.",
            (Query("max by (station) (centinela_incident_open)", "{{station}}"),),
            (24, 7),
            thresholds=RED_FROM_1,
            mappings=INCIDENT_MAPPINGS,
        ),
        Panel(
            "timeseries",
            "Alert rate per station",
            "Incident openings and closings per station in the last hour (an incident is two). "
            "The CentinelaStationAlertRateHigh alert compares 6 hours of this with the station's week.",
            (Query("max by (station) (changes(centinela_incident_open[1h]))", "{{station}}"),),
            (12, 8),
            decimals=0,
        ),
        Panel(
            "timeseries",
            "Alerts per hour by kind and severity",
            "Alerts the detectors wrote to the alerts topic (openings only), per hour.",
            (
                Query(
                    'sum by (kind, severity) (rate(centinela_alerts_total{status="open"}[$__rate_interval]))'
                    " * 3600",
                    "{{kind}} {{severity}}",
                ),
            ),
            (12, 8),
        ),
        Panel(
            "bargauge",
            "Data freshness",
            "Age of each station's newest reading. Readings come every minute; 15 minutes is a gap.",
            (Query("min by (station) (centinela_data_freshness_seconds)", "{{station}}"),),
            (12, 9),
            unit="s",
            thresholds=FRESHNESS_STEPS,
        ),
        Panel(
            "timeseries",
            "Score / threshold per station",
            "Each station's latest window score over its threshold: above 1 the window looks abnormal.",
            (Query("max by (station) (centinela_score / centinela_threshold)", "{{station}}"),),
            (12, 9),
            thresholds=RED_FROM_1,
            custom=DASHED_THRESHOLDS,
        ),
    ),
)


STATION_VARIABLE: Json = {
    "name": "station",
    "label": "Station",
    "type": "query",
    "datasource": DATASOURCE,
    "query": {"query": "label_values(centinela_score, station)", "refId": "StationVariable"},
    "definition": "label_values(centinela_score, station)",
    "refresh": 2,
    "sort": 1,
    "includeAll": False,
    "multi": False,
}
STATION_SELECTOR = 'station="$station"'
# max by sensor: one series per sensor even if two detectors briefly export the station.
STATION_CONTRIBUTION = f"max by (sensor) (centinela_incident_contribution{{{STATION_SELECTOR}}})"


def _station_series(aggregation: str, metric: str) -> str:
    return f"{aggregation}({metric}{{{STATION_SELECTOR}}})"


STATION = Board(
    "centinela-station",
    "Centinela / Station drill-down",
    "One station: score against threshold over time, incidents, freshness, and the sensors behind its "
    "latest incidents.",
    (
        Panel(
            "timeseries",
            "Score vs threshold",
            "Reconstruction error of each scored window (score) and the calibrated threshold. An incident "
            "opens when the score crosses the threshold and closes after it stays below with hysteresis.",
            (
                Query(_station_series("max", "centinela_score"), "score"),
                Query(_station_series("max", "centinela_threshold"), "threshold"),
            ),
            (24, 9),
            overrides=(
                {
                    "matcher": {"id": "byName", "options": "threshold"},
                    "properties": [
                        {"id": "color", "value": {"mode": "fixed", "fixedColor": RED}},
                        DASHED_LINE,
                    ],
                },
            ),
        ),
        Panel(
            "state-timeline",
            "Incident",
            "When this station had an incident open.",
            (Query(_station_series("max", "centinela_incident_open"), "incident"),),
            (24, 3),
            thresholds=RED_FROM_1,
            mappings=INCIDENT_MAPPINGS,
            options={"showValue": "never", "mergeValues": True, "legend": {"showLegend": False}},
        ),
        Panel(
            "stat",
            "Score / threshold now",
            "Latest window score over the threshold.",
            (
                Query(
                    f"max(centinela_score{{{STATION_SELECTOR}}} / centinela_threshold{{{STATION_SELECTOR}}})"
                ),
            ),
            (6, 4),
            decimals=2,
            thresholds=RED_FROM_1,
        ),
        Panel(
            "stat",
            "Incident changes in range",
            "Openings and closings of incidents in the time range shown.",
            (Query(f"max(changes(centinela_incident_open{{{STATION_SELECTOR}}}[$__range]))"),),
            (6, 4),
            thresholds=INFO,
        ),
        Panel(
            "stat",
            "Data freshness",
            "Age of the station's newest reading.",
            (Query(_station_series("min", "centinela_data_freshness_seconds")),),
            (6, 4),
            unit="s",
            thresholds=FRESHNESS_STEPS,
        ),
        Panel(
            "stat",
            "Newest reading",
            "Event time of the newest reading from this station.",
            (Query(_station_series("max", "centinela_last_reading_timestamp_seconds") + " * 1000"),),
            (6, 4),
            unit="dateTimeAsIso",
            thresholds=INFO,
            options=_stat_options(color_mode="none"),
        ),
        Panel(
            "bargauge",
            "Sensor contributions, latest incident",
            "Each sensor's share of the reconstruction error in the station's latest incident alert "
            "(open or update); kept after the incident closes. Empty until the station "
            "has had an incident on the detector that serves it now.",
            (Query(STATION_CONTRIBUTION, "{{sensor}}"),),
            (10, 8),
            unit="percentunit",
            thresholds=INFO,
            options={**BARGAUGE_OPTIONS, "minVizHeight": 10, "maxVizHeight": 300},
        ),
        Panel(
            "timeseries",
            "Sensor contributions of recent incidents",
            "The same shares over time: a step at each incident alert (open, then updates). Between "
            "incidents the lines hold the last incident's shares.",
            (Query(STATION_CONTRIBUTION, "{{sensor}}"),),
            (14, 8),
            unit="percentunit",
            custom={"drawStyle": "line", "lineInterpolation": "stepAfter", "fillOpacity": 10},
        ),
    ),
    variables=(STATION_VARIABLE,),
    time_from="now-24h",
)


SEGMENT_VARIABLE: Json = {
    "name": "segment",
    "label": "Segment",
    "type": "query",
    "datasource": DATASOURCE,
    "query": {"query": "label_values(centinela_segment_balance_m3h, segment)", "refId": "SegmentVariable"},
    "definition": "label_values(centinela_segment_balance_m3h, segment)",
    "refresh": 2,
    "sort": 1,
    "includeAll": True,
    "allValue": ".*",
    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    "multi": True,
}
SEGMENT_SELECTOR = 'segment=~"$segment"'


def _segment_series(metric: str) -> str:
    return f"max by (segment) ({metric}{{{SEGMENT_SELECTOR}}})"


def _opened_in_range(kind: str) -> str:
    return f'sum(increase(centinela_alerts_total{{kind="{kind}", status="open"}}[$__range]))'


LINE = Board(
    "centinela-line",
    "Centinela / Line",
    "The segments of the line: flow balance, the sequential test against its limit, tap incidents, "
    "degraded balances and meter faults.",
    (
        SEGMENT_TILES.sized(16, 6),
        OPEN_TAPS.sized(4, 3),
        DEGRADED_SEGMENTS.sized(4, 3),
        Panel(
            "stat",
            "Tap alerts in range",
            "Tap incidents opened in the time range shown, all segments.",
            (Query(_opened_in_range("tap")),),
            (4, 3),
            decimals=0,
            thresholds=RED_FROM_1,
            no_value="0",
        ),
        Panel(
            "stat",
            "Meter faults in range",
            "Flow or level meter faults (stuck, spiking, drifting, silent) opened in the time range shown.",
            (Query(_opened_in_range("meter_fault")),),
            (4, 3),
            decimals=0,
            thresholds=ORANGE_FROM_1,
            no_value="0",
        ),
        Panel(
            "timeseries",
            "Flow balance",
            "Each segment's latest level-compensated balance: flow in at the upstream station minus flow out "
            "downstream, corrected for the tanks and line pack. A tap shows as a lasting positive balance.",
            (Query(_segment_series("centinela_segment_balance_m3h"), "{{segment}}"),),
            (12, 9),
            unit="flowcmh",
        ),
        Panel(
            "timeseries",
            "Sequential test: statistic / limit",
            "Each segment's test statistic over the limit calibrated for its false-alarm budget: a tap "
            "incident opens when it reaches 1.",
            (
                Query(
                    f"max by (segment) (centinela_segment_statistic{{{SEGMENT_SELECTOR}}}"
                    f" / centinela_segment_limit{{{SEGMENT_SELECTOR}}})",
                    "{{segment}}",
                ),
            ),
            (12, 9),
            thresholds=RED_FROM_1,
            custom=DASHED_THRESHOLDS,
        ),
        Panel(
            "timeseries",
            "Statistic and limit",
            "The statistic and its limit per segment, in the test's own units (pick one segment at the top "
            "to read it alone).",
            (
                Query(_segment_series("centinela_segment_statistic"), "{{segment}} statistic"),
                Query(_segment_series("centinela_segment_limit"), "{{segment}} limit"),
            ),
            (12, 8),
            overrides=({"matcher": {"id": "byRegexp", "options": ".* limit"}, "properties": [DASHED_LINE]},),
        ),
        Panel(
            "timeseries",
            "Tap and meter-fault alerts per hour",
            "Tap incidents and meter faults opened, per hour, by severity.",
            (
                Query(
                    'sum by (kind, severity) (rate(centinela_alerts_total{kind=~"tap|meter_fault", '
                    'status="open"}[$__rate_interval])) * 3600',
                    "{{kind}} {{severity}}",
                ),
            ),
            (12, 8),
        ),
        Panel(
            "state-timeline",
            "Tap incidents",
            "When each segment had a tap incident open.",
            (Query(_segment_series("centinela_segment_incident_open"), "{{segment}}"),),
            (24, 6),
            thresholds=RED_FROM_1,
            mappings=(value_map((0, "normal", GREEN), (1, "tap", RED)),),
        ),
        Panel(
            "state-timeline",
            "Degraded balance",
            "When each segment's balance was held (a meter fault or a silent station): no tap can be seen "
            "on the segment then.",
            (Query(_segment_series("centinela_segment_degraded"), "{{segment}}"),),
            (24, 6),
            thresholds=ORANGE_FROM_1,
            mappings=(value_map((0, "watched", GREEN), (1, "degraded", ORANGE)),),
        ),
    ),
    variables=(SEGMENT_VARIABLE,),
    time_from="now-24h",
)


def _quantile(q: float, metric: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket[$__rate_interval])))"


def _per_second(metric: str, by: str = "") -> str:
    total = f"sum by ({by}) " if by else "sum"
    return f"{total}(rate({metric}[$__rate_interval]))"


SERVICE = Board(
    "centinela-service",
    "Centinela / Service health",
    "The detectors themselves: throughput, lag, latency, dead letters, model.",
    (
        Panel(
            "timeseries",
            "Readings per second by outcome",
            "Readings consumed: accepted, late (beyond the allowed lateness), duplicate, invalid.",
            (Query(_per_second("centinela_readings_total", "outcome"), "{{outcome}}"),),
            (12, 8),
            unit="reqps",
        ),
        Panel(
            "timeseries",
            "Windows per second",
            "Windows scored, and windows skipped for too little data, by reason.",
            (
                Query(_per_second("centinela_windows_scored_total"), "scored"),
                Query(_per_second("centinela_windows_skipped_total", "reason"), "skipped: {{reason}}"),
            ),
            (12, 8),
            unit="ops",
        ),
        Panel(
            "timeseries",
            "Consumer lag per partition",
            "Readings waiting on each partition of the readings topic.",
            (Query("max by (partition) (centinela_consumer_lag)", "partition {{partition}}"),),
            (12, 8),
        ),
        Panel(
            "stat",
            "Total lag",
            "Readings waiting on all partitions.",
            (Query("sum(max by (partition) (centinela_consumer_lag))"),),
            (4, 4),
            thresholds=((None, GREEN), (1000, ORANGE)),
        ),
        DETECTORS_UP,
        Panel(
            "stat",
            "Kafka",
            "Detectors that reach the Kafka cluster, of those scraped.",
            (Query("sum(centinela_broker_up)"),),
            (4, 4),
            thresholds=GREEN_FROM_1,
        ),
        Panel(
            "stat",
            "Model version",
            "The model bundle each detector serves.",
            (Query("max by (model_version, format_version) (centinela_model_info)", "{{model_version}}"),),
            (6, 4),
            options=_stat_options(text_mode="name", color_mode="none"),
        ),
        Panel(
            "stat",
            "Model reloads / failures (1 h)",
            "Bundles loaded and refused in the last hour; a refused bundle leaves the old model serving.",
            (
                Query("sum(increase(centinela_model_reloads_total[1h]))", "reloads"),
                Query("sum(increase(centinela_model_reload_failures_total[1h]))", "failures"),
            ),
            (6, 4),
            decimals=0,
            thresholds=INFO,
            options=_stat_options(text_mode="value_and_name", color_mode="none"),
        ),
        Panel(
            "timeseries",
            "Reading-to-decision latency",
            "From a reading's arrival to the decision on the window it closes (scored, alert written).",
            tuple(
                Query(_quantile(q, "centinela_decision_latency_seconds"), f"p{round(q * 100)}")
                for q in (0.5, 0.95, 0.99)
            ),
            (12, 8),
            unit="s",
        ),
        Panel(
            "timeseries",
            "Scoring time per batch and batch size",
            "Time to score one batch of windows, and windows per batch (right axis).",
            (
                Query(_quantile(0.5, "centinela_scoring_seconds"), "scoring p50"),
                Query(_quantile(0.95, "centinela_scoring_seconds"), "scoring p95"),
                Query(
                    _per_second("centinela_batch_windows_sum")
                    + " / "
                    + _per_second("centinela_batch_windows_count"),
                    "windows per batch",
                ),
            ),
            (12, 8),
            unit="s",
            overrides=(
                {
                    "matcher": {"id": "byName", "options": "windows per batch"},
                    "properties": [
                        {"id": "unit", "value": "short"},
                        {"id": "custom.axisPlacement", "value": "right"},
                    ],
                },
            ),
        ),
        Panel(
            "timeseries",
            "Dead letters per second by reason",
            "Readings sent to the dead-letter topic; each one's headers say the reason and the source.",
            (Query(_per_second("centinela_dead_letters_total", "reason"), "{{reason}}"),),
            (12, 8),
            unit="ops",
        ),
        Panel(
            "timeseries",
            "Alerts per second by status",
            "Alerts written to the alerts topic: open, update, close.",
            (Query(_per_second("centinela_alerts_total", "status"), "{{status}}"),),
            (12, 8),
            unit="ops",
        ),
        Panel(
            "timeseries",
            "Kafka transactions per second by outcome",
            "Each batch's alerts and offsets commit in one transaction; aborted ones are re-read, not lost.",
            (Query(_per_second("centinela_transactions_total", "outcome"), "{{outcome}}"),),
            (12, 8),
            unit="ops",
        ),
        Panel(
            "timeseries",
            "Readings re-read after a rebalance",
            "Readings read again to rebuild windows after partitions moved between detectors "
            "(nothing is published for them).",
            (Query(_per_second("centinela_rebuilt_readings_total"), "re-read"),),
            (12, 8),
            unit="reqps",
        ),
    ),
    time_from="now-3h",
)


BOARDS: Mapping[str, Board] = {"overview": OVERVIEW, "station": STATION, "line": LINE, "service": SERVICE}


def render(dashboard: Json) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def write_dashboards(out_dir: Path = DASHBOARDS_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, board in BOARDS.items():
        path = out_dir / f"{name}.json"
        path.write_text(render(build(board)), encoding="utf-8")
        written.append(path)
    return written


def stale_dashboards(out_dir: Path = DASHBOARDS_DIR) -> list[str]:
    """Names of the files in ``out_dir`` that differ from what this module writes (or are missing)."""
    stale = []
    for name, board in BOARDS.items():
        path = out_dir / f"{name}.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != render(build(board)):
            stale.append(path.name)
    return stale


def panel_queries(dashboard: Json) -> Iterator[PanelQuery]:
    """Every PromQL expression of a dashboard: panel targets and query variables."""
    title = str(dashboard.get("title", "?"))
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield PanelQuery(title, str(panel.get("title", "?")), str(target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        expr = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") == "query" and expr:
            yield PanelQuery(title, f"variable ${variable['name']}", str(expr))


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> list[Json]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.json"))]


_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def as_promql(
    expr: str, variables: Mapping[str, str], rate_interval: str = "1m", time_range: str = "1h"
) -> str:
    """Turn a Grafana target into plain PromQL: variables filled in, ``label_values(sel, label)``
    reduced to its selector (it returns data exactly when the selector does)."""
    match = _LABEL_VALUES.match(expr.strip())
    if match:
        expr = match.group("selector")
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__interval", rate_interval)
    expr = expr.replace("$__range", time_range)
    for name, value in variables.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    return expr


def register(app: typer.Typer) -> None:
    @app.command("dashboards")
    def dashboards_command(
        out: Path = typer.Option(DASHBOARDS_DIR, "--out", help="Folder for the dashboard JSON files."),
        check: bool = typer.Option(
            False,
            "--check",
            help="Write nothing; exit 1 if the files in --out are not what this version writes.",
        ),
    ) -> None:
        """Write the Grafana dashboards (operations overview, station drill-down, line, service health)."""
        if check:
            stale = stale_dashboards(out)
            if stale:
                typer.echo(f"out of date in {out}: {', '.join(stale)}; run `centinela dashboards`", err=True)
                raise typer.Exit(1)
            typer.echo(f"dashboards in {out} are up to date")
            return
        for path in write_dashboards(out):
            typer.echo(f"written {path}")


if __name__ == "__main__":
    standalone = typer.Typer(add_completion=False)
    register(standalone)
    standalone()
