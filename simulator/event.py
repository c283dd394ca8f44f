"""The event model: what happens to the line, when, where and how big, and how each becomes a label.

Every event is listed in events.csv. Only ``theft`` and ``leak`` carry label 1; a ``sensor_fault``
is a data problem (label 0, its own ``event_type``), and ``transient``/``maintenance`` events are
normal operation listed so an evaluation can check that nothing alarms there.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENT_TYPES: tuple[str, ...] = ("theft", "leak", "sensor_fault", "maintenance", "transient")
LABELLED_TYPES = frozenset({"theft", "leak"})
# Which event names a row when several overlap: the more serious one wins.
PRIORITY = {"theft": 4, "leak": 4, "sensor_fault": 3, "maintenance": 2, "transient": 1}
ALL_SENSORS = "*"


@dataclass(frozen=True)
class Event:
    """One event; ``start``/``end`` are minute indices, end exclusive.

    ``stations`` are the stations whose rows carry the event (for theft and leak: the stations at
    both ends of the segment). ``effect_end`` is when the cause stops (a pump restarts); ``end``
    also covers the recovery that follows, so the whole disturbance is listed.
    """

    event_type: str
    subtype: str
    start: int
    end: int
    stations: tuple[int, ...]
    segment: int | None = None
    station: int | None = None
    sensor: str = ""
    magnitude: float = 0.0
    unit: str = ""
    position: float | None = None
    ramp_open: int = 0
    ramp_close: int = 0
    effect_end: int | None = None
    event_id: str = ""

    @property
    def label(self) -> int:
        return 1 if self.event_type in LABELLED_TYPES else 0

    @classmethod
    def theft(
        cls, segment: int, start: int, end: int, fraction: float, *, position: float = 0.5, ramp: int = 5
    ) -> Event:
        """A scripted tap on ``segment`` (from station ``segment`` to the next); minutes from the start."""
        return cls(
            "theft",
            "tap",
            start,
            end,
            (segment, segment + 1),
            segment=segment,
            magnitude=fraction,
            unit="fraction_of_flow",
            position=position,
            ramp_open=ramp,
            ramp_close=ramp,
        )

    @classmethod
    def leak(cls, segment: int, start: int, end: int, fraction: float, *, position: float = 0.5) -> Event:
        """A scripted leak growing linearly to ``fraction`` of the flow by ``end``."""
        return cls(
            "leak",
            "growing",
            start,
            end,
            (segment, segment + 1),
            segment=segment,
            magnitude=fraction,
            unit="fraction_of_flow",
            position=position,
        )
