"""The leak scenario of ``evaluate sim``: each seed's line again, with leaks instead of thefts.

Why a scenario of its own: the main runs draw thefts often (to fill every size band) and a segment
carries one extraction at a time, so a leak (6 to 72 hours, growing) almost never finds room there:
the full run had none. Here the same seed's line (the simulator draws the line from a stream of its
own, so the pipes and tanks are those the line calibration learnt) is simulated again over the test
period's dates, with thefts off and ``LEAK_RATE`` leaks per segment-month, and goes through the
seed's own line calibration, offline. The live service raises exactly the offline oracle's segment
alerts on the main runs (``live_matches_offline`` in the report), so this is what it would raise.

A leak is caught, as a theft is, when a tap incident on its segment opens after its start and
before its end plus the grace period. A leak grows linearly to its final size, so besides the time to
alarm the report gives the leak's size when the alarm opened, in percent of the line's flow: what an
operator needs to know ("leaks are caught by the time they take X % of the flow").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from evaluation.suites import sim_segments
from evaluation.suites.sim_events import DAYS_PER_MONTH, quantile
from evaluation.suites.sim_segments import Tally

if TYPE_CHECKING:
    from detector.line import LineCalibration
    from detector.topology import Topology
    from simulator import SimulationConfig

LEAK_RATE = 3.0  # leaks per segment-month: about 25 leaks per seed over 60 test days on 6 stations
# Final leak size, in percent of the line's flow (the simulator draws 0.2 to 2 %, log-uniform).
SIZE_BANDS: tuple[tuple[float, float, str], ...] = (
    (0.0, 0.5, "<0.5"),
    (0.5, 1.0, "0.5-1"),
    (1.0, 2.01, "1-2"),
)


def leak_config(config: SimulationConfig, test_start: int) -> SimulationConfig:
    """The same line and seed over the test period's dates only, thefts off, leaks at ``LEAK_RATE``."""
    test = dataclasses.replace(
        config, start=config.start + timedelta(minutes=test_start), days=config.days - test_start / 1440
    )
    return test.with_rates(theft_per_segment_month=0.0, leak_per_segment_month=LEAK_RATE)


@dataclass(frozen=True)
class LeakRun:
    """One seed's leak scenario: its event rows (as the main tally's) and its tap false alarms."""

    tally: Tally
    alerts: int


def run(
    config: SimulationConfig,
    test_start: int,
    topology: Topology,
    calibration: LineCalibration,
    fields: tuple[str, ...],
    *,
    model_version: str,
) -> LeakRun:
    """Simulate the leak scenario of ``config``'s line and judge the test period's segment alerts."""
    from evaluation.suites.sim import truth_events
    from evaluation.suites.sim_live import offline_line_alerts
    from simulator import simulate

    result = simulate(leak_config(config, test_start))
    alerts = offline_line_alerts(result.frame, topology, calibration, fields, model_version)
    events = truth_events(result)
    lengths = {s.segment_id: s.length_km for s in topology.segments}
    incidents = sim_segments.fold_segment_incidents(alerts)
    joined = sim_segments.join_segments(
        events, incidents, sim_segments.fold_station_incidents(alerts), lengths
    )
    station_months = result.config.stations * result.config.days / DAYS_PER_MONTH
    return LeakRun(Tally.of(joined, station_months, autoencoder=False), len(alerts))


def size_at_alarm_pct(row: dict[str, Any]) -> float | None:
    """The leak's size when its alarm opened, in percent of flow (it grows linearly to ``magnitude``)."""
    if not row["caught"] or not row["minutes"]:
        return None
    grown = min(1.0, float(row["minutes_to_alarm"]) / float(row["minutes"]))
    return 100.0 * float(row["magnitude"]) * grown


def figures(runs: Sequence[LeakRun], seeds: Sequence[int]) -> dict[str, Any]:
    """The report's ``leaks`` block: detection, time and size at alarm, by final size; false alarms."""
    pooled = Tally.pooled([r.tally for r in runs])
    leaks = [r for r in pooled.events if r["event_type"] == "leak"]
    caught = [r for r in leaks if r["caught"]]
    by_size: dict[str, dict[str, Any]] = {}
    for low, high, name in SIZE_BANDS:
        members = [r for r in leaks if low <= 100.0 * float(r["magnitude"]) < high]
        hit = [r for r in members if r["caught"]]
        by_size[name] = {
            "events": len(members),
            "caught": len(hit),
            "detection_rate": len(hit) / len(members) if members else None,
            "median_minutes_to_alarm": quantile([float(r["minutes_to_alarm"]) for r in hit], 0.5),
        }
    sizes = [s for s in (size_at_alarm_pct(r) for r in caught) if s is not None]
    service = sim_segments.figures(pooled)
    return {
        "scenario": {
            "leaks_per_segment_month": LEAK_RATE,
            "thefts": 0,
            "seeds": list(seeds),
            "station_months": pooled.station_months,
            "mode": "offline, through each seed's line calibration (the live service equals the offline "
            "oracle on the main runs)",
        },
        "events": len(leaks),
        "caught": len(caught),
        "detection_rate": len(caught) / len(leaks) if leaks else None,
        "median_minutes_to_alarm": quantile([float(r["minutes_to_alarm"]) for r in caught], 0.5),
        "p90_minutes_to_alarm": quantile([float(r["minutes_to_alarm"]) for r in caught], 0.9),
        "median_size_at_alarm_pct_of_flow": quantile(sizes, 0.5),
        "by_final_size_pct_of_flow": by_size,
        "false_alarms_per_station_month": service["tap_false_alarms_per_station_month"],
        "false_alarms_per_station_month_all": service["tap_false_alarms_per_station_month_all"],
        "location_median_error_pct_of_segment": quantile(
            [e for e in (r["location_error_pct_of_segment"] for r in caught) if e is not None], 0.5
        ),
    }
