"""Sensor faults: the instrument lies or goes silent while the line itself is fine."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from simulator.event import ALL_SENSORS, Event

Array = npt.NDArray[np.float64]


def apply_faults(
    events: list[Event], readings: dict[str, Array], present: npt.NDArray[np.bool_]
) -> list[Event]:
    """Corrupt ``readings`` in place (NaN = empty cell, ``present`` False = missing row).

    Returns the events with the magnitude of ``stuck`` faults filled in (the frozen value).
    """
    updated: list[Event] = []
    for event in events:
        if event.event_type != "sensor_fault" or event.station is None:
            updated.append(event)
            continue
        j, start, end = event.station, event.start, event.end
        if event.subtype == "dropout":
            if event.sensor == ALL_SENSORS:
                present[start:end, j] = False
            else:
                readings[event.sensor][start:end, j] = np.nan
            updated.append(event)
            continue
        values = readings[event.sensor]
        if event.subtype == "stuck":
            frozen = values[max(start - 1, 0), j]
            values[start:end, j] = frozen
            updated.append(replace(event, magnitude=float(frozen) if np.isfinite(frozen) else 0.0))
            continue
        if event.subtype == "spike":
            values[start:end, j] *= 1.0 + event.magnitude
        elif event.subtype == "drift":
            length = end - start
            values[start:end, j] *= 1.0 + event.magnitude * np.arange(1, length + 1) / length
        updated.append(event)
    return updated
