"""A few days of one segment (the stations at both ends) with the events shaded, as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.errors import ConfigError
from simulator.event import Event
from simulator.result import SimulationResult

COLOURS = {
    "theft": "#d62728",
    "leak": "#ff7f0e",
    "sensor_fault": "#7f7f7f",
    "maintenance": "#2ca02c",
    "transient": "#1f77b4",
}
PANELS = (
    ("flow", "flow (m3/h)"),
    ("pressure", "discharge pressure (bar)"),
    ("power", "power (kW, seed scale)"),
    ("tank_level", "tank level (m)"),
)
BALANCE_MINUTES = 30


def _largest_theft(result: SimulationResult, segment: int | None = None) -> Event | None:
    thefts = [
        e
        for e in result.events
        if e.event_type == "theft" and e.segment is not None and (segment is None or e.segment == segment)
    ]
    # The largest by volume taken: big enough to see, long enough to see at a scale of days.
    return max(thefts, key=lambda e: (e.magnitude * (e.end - e.start), -e.start), default=None)


def default_segment(result: SimulationResult) -> int:
    """The segment of the largest theft by volume (0 when there is none): the clearest picture of one."""
    largest = _largest_theft(result)
    return largest.segment if largest is not None and largest.segment is not None else 0


def default_window(result: SimulationResult, segment: int, days: float) -> int:
    """First minute of a window of ``days`` that starts half a day before the segment's largest theft."""
    minutes = len(result.times)
    length = round(days * 1440)
    largest = _largest_theft(result, segment)
    first = largest.start - 720 if largest is not None else 0
    return int(np.clip(first, 0, max(minutes - length, 0)))


def plot_segment(
    result: SimulationResult,
    path: Path,
    *,
    segment: int | None = None,
    days: float = 3.0,
    start_minute: int | None = None,
) -> Path:
    """Write a PNG of ``days`` of ``segment`` (default: the segment and days around the largest theft)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.station_ids)
    if n < 2:
        raise ConfigError("a segment plot needs at least two stations")
    segment = default_segment(result) if segment is None else segment
    if not 0 <= segment < n - 1:
        raise ConfigError(f"segment must be within 0..{n - 2}")
    start = default_window(result, segment, days) if start_minute is None else start_minute
    stop = min(start + round(days * 1440), len(result.times))
    window = slice(start, stop)
    times = result.times[window]
    ends = (segment, segment + 1)
    names = [result.station_ids[j] for j in ends]

    figure, axes = plt.subplots(len(PANELS) + 1, 1, figsize=(14, 12), sharex=True)
    for axis, (sensor, title) in zip(axes, PANELS, strict=False):
        for j, name, style in zip(ends, names, ("-", "-"), strict=True):
            values = np.where(result.present[window, j], result.readings[sensor][window, j], np.nan)
            axis.plot(times, values, style, linewidth=0.7, label=name)
        axis.set_ylabel(title, fontsize=8)
        axis.legend(loc="upper right", fontsize=7)
    balance = result.segment_imbalance(segment, line_pack=True)[window]
    kernel = np.ones(BALANCE_MINUTES) / BALANCE_MINUTES
    smoothed = np.convolve(np.nan_to_num(balance), kernel, mode="same")
    truth = result.extraction_m3h[window, segment]
    balance_label = f"measured in - out - tank - line pack, {BALANCE_MINUTES} min mean"
    axes[-1].plot(times, smoothed, linewidth=0.8, label=balance_label)
    axes[-1].plot(times, truth, linewidth=1.0, color=COLOURS["theft"], label="true extraction")
    axes[-1].set_ylabel("segment balance (m3/h)", fontsize=8)
    axes[-1].legend(loc="upper right", fontsize=7)

    shown: set[str] = set()
    for event in result.events:
        if event.end <= start or event.start >= stop or not set(event.stations) & set(ends):
            continue
        colour = COLOURS.get(event.event_type, "#cccccc")
        alpha = 0.08 if event.subtype == "batch_change" else 0.22
        label = event.event_type if event.event_type not in shown else None
        shown.add(event.event_type)
        span_start = result.times[max(event.start, start)]
        span_end = result.times[min(event.end, stop) - 1]
        for index, axis in enumerate(axes):
            axis.axvspan(span_start, span_end, color=colour, alpha=alpha, label=label if index == 0 else None)
    axes[0].legend(loc="upper right", fontsize=7)
    first = np.datetime_as_string(times[0], unit="m")
    figure.suptitle(
        f"segment {result.segment_name(segment)}: {days:g} days from {first}Z "
        "(red theft, orange leak, grey sensor fault, green maintenance, blue transient)",
        fontsize=9,
    )
    figure.autofmt_xdate()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
