"""Meter validation: a stuck, spiking or silent flow or level meter must never become a theft.

Checked per station and per balance sensor (its flow and tank level), once a minute, before any
segment uses the minute:

- **stuck**: the same value for ``STUCK_MINUTES`` minutes while it is not zero, on a meter whose
  value usually moves from minute to minute (a noisy meter never repeats itself that long: flow
  is read to 0.1 m3/h with ~1.7 m3/h of noise, level to 1 mm with
  ~2 mm of minute-to-minute change). Held as a fault until the value moves again.
- **spike**: a flow jump of more than 4 % that the station's own discharge pressure does not
  echo (a real change of pumped flow moves the friction loss with Q^1.8), or a level jump a tank
  cannot make in a minute (> 6 cm: 500 m3/h over 250 m2 is 3.3 cm). The reading is masked (the
  balance carries the last good value forward) until it comes back; a jump that stays more than
  ``SPIKE_MINUTES`` is accepted as the new normal.
- **silent**: no value for ``SILENT_MINUTES`` minutes (a missing cell or a missing row).

A stuck or silent meter degrades every segment that reads it; a spike only masks its minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STUCK_MINUTES = {"flow": 6, "tank_level": 12}
SPIKE_MINUTES = 5
# Only a meter whose value usually moves minute to minute (its noise shows) can be seen stuck: a
# noise-free meter on a steady line is legitimately flat.
CHANGE_MINUTES = 60.0
NOISY = 0.5
SILENT_MINUTES = 5
FLOW_JUMP = 0.04
LEVEL_JUMP_M = 0.06


class MeterCheck:
    """One meter's recent history and its current fault, if any."""

    __slots__ = (
        "changing",
        "fault",
        "last",
        "missing",
        "opened",
        "ref",
        "repeats",
        "role",
        "since_ref",
        "spike_minutes",
    )

    def __init__(self, role: str) -> None:
        self.role = role
        self.last: float | None = None
        self.ref: float | None = None  # last value believed good
        self.repeats = 0
        self.missing = 0
        self.spike_minutes = 0
        self.since_ref = 0  # minutes since ``ref`` was read (a gap lets a level move further)
        self.fault: str | None = None
        self.opened = 0
        self.changing = 0.0  # how often the value moves from one minute to the next (slow average)

    def observe(self, value: float | None, pressure_change: float | None) -> tuple[float | None, str | None]:
        """The value the balance may use (None = masked or missing) and the fault it shows now."""
        self.since_ref += 1
        if value is None:
            self.missing += 1
            self.repeats = 0
            return None, "silent" if self.missing >= SILENT_MINUTES else self._spike_fault()
        self.missing = 0
        same = value == self.last
        self.repeats = self.repeats + 1 if same and value != 0.0 else 0
        self.changing += ((0.0 if same else 1.0) - self.changing) / CHANGE_MINUTES
        self.last = value
        if self.repeats + 1 >= STUCK_MINUTES[self.role] and self.changing > NOISY:
            return None, "stuck"
        ref = self.ref
        if ref is not None:
            # Jumped (inline: once per meter and minute)? A level further than a tank can move; a
            # flow by more than FLOW_JUMP that the discharge pressure does not echo (a real change
            # of pumped flow moves the friction loss too; a meter spike does not).
            if self.role == "tank_level":
                jumped = abs(value - ref) > LEVEL_JUMP_M * self.since_ref
            else:
                scale = abs(ref)
                # max(scale, 50.0) exactly (NaN included), without a call per meter and minute
                relative = abs(value - ref) / (50.0 if scale < 50.0 else scale)
                jumped = (
                    relative > FLOW_JUMP and pressure_change is not None and pressure_change < 0.25 * relative
                )
            if jumped:
                self.spike_minutes += 1
                if self.spike_minutes <= SPIKE_MINUTES:
                    return None, "spike"
        self.spike_minutes = 0
        self.ref = value
        self.since_ref = 0
        return value, None

    def _spike_fault(self) -> str | None:
        return "spike" if self.spike_minutes else None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def restore(self, data: Mapping[str, Any]) -> None:
        self.last = None if data["last"] is None else float(data["last"])
        self.ref = None if data["ref"] is None else float(data["ref"])
        self.repeats = int(data["repeats"])
        self.missing = int(data["missing"])
        self.spike_minutes = int(data["spike_minutes"])
        self.fault = None if data["fault"] is None else str(data["fault"])
        self.opened = int(data["opened"])
        self.since_ref = int(data["since_ref"])
        self.changing = float(data["changing"])


class StationMeters:
    """The balance meters of one station and the last discharge pressure (the spike witness)."""

    __slots__ = ("checks", "last_pressure", "pressure_field")

    def __init__(self, fields: Mapping[str, str], pressure_field: str) -> None:
        self.checks = {name: MeterCheck(role) for role, name in fields.items()}
        self.pressure_field = pressure_field
        self.last_pressure: float | None = None

    def observe(self, row: dict[str, float] | None) -> tuple[dict[str, float], dict[str, str]]:
        """(the row with masked meters removed, {field: fault} of the meters at fault now).

        ``row`` (the monitor's own, floats) is returned with its masked meters removed, not copied;
        an empty cell (NaN) of another field stays in it: every reader of a row tests for NaN.
        """
        faults: dict[str, str] = {}
        if row is None:
            for name, check in self.checks.items():
                fault = check.observe(None, None)[1]
                if fault is not None:
                    faults[name] = fault
            return {}, faults
        pressure = row.get(self.pressure_field)
        change = None
        # ``x == x`` is False only for NaN (an empty cell): the test without a call per value.
        if pressure is not None and pressure == pressure:  # noqa: PLR0124 - NaN test
            last = self.last_pressure
            if last is not None:
                scale = abs(last)
                change = abs(pressure - last) / (1.0 if scale < 1.0 else scale)  # max(scale, 1.0)
            self.last_pressure = pressure
        for name, check in self.checks.items():
            value = row.get(name)
            if value is not None and value != value:  # noqa: PLR0124 - NaN test
                value = None
            usable, fault = check.observe(value, change)
            if usable is None and value is not None:
                del row[name]
            if fault is not None:
                faults[name] = fault
        return row, faults

    def to_dict(self) -> dict[str, Any]:
        return {
            "checks": {name: check.to_dict() for name, check in self.checks.items()},
            "last_pressure": self.last_pressure,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        for name, check in self.checks.items():
            check.restore(data["checks"][name])
        value = data["last_pressure"]
        self.last_pressure = None if value is None else float(value)
