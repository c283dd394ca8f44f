"""One segment's minute-by-minute state: compensated balance, bias, sequential test, tap incident.

The balance (m3/h) of segment up -> down in minute ``t``::

    b = flow[up] - flow[down] - A_down * d(level[down])/dt - deliveries + injections
        - V / K * d(p_mean)/dt - skew correction

The level and line-pack terms are differences, so their *cumulative* sum telescopes: over any
window it is the change of inventory between the window's two ends, however noisy the gauge is
minute to minute. The test therefore looks at the cumulative residual ``V_W`` (m3) over several
windows ``W`` (5 ... 160 min) and takes the largest standardised excess
``z = max_W (V_W - drift * W / 60) / sigma_W`` (a windowed GLR for a step in the mean). A clock
offset between the two stations turns a flow step into a one-minute spike that does *not*
telescope; ``skew_gain`` removes it (learned in calibration by regressing the balance on the
upstream flow's change, see ``trainer/line_calibration.py``).

Pressure evidence (optional, ``pressure_weight > 0``): a tap lowers the upstream discharge
pressure at once. The pressure's z (``PressureTrack``: the residual's local step, or its drop
against the slowly tracked offset) is fused with the best balance window up to 20 minutes,
``z_f = (z_short + w * min(z_p, cap)) / sqrt(1 + w^2)``, only where ``z_short`` exceeds
``pressure_gate`` (the balance must agree). It is a second test with its own limit, calibrated on
its own share of the false-alarm budget; ``pressure_shift`` (= balance limit - pressure limit) puts
it on the balance's scale, so the statistic is ``max(z_bal, z_f + shift)`` against one ``limit``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from detector.line.calibration import SegmentCalibration
from detector.line.packing import pack, unpack
from detector.line.pressure import PressureTrack
from detector.topology import Segment

BIAS_MINUTES = 720.0  # time constant of the slow bias tracker (meter offsets drift over weeks)
# The tracker's step is clipped (Huber): a one-minute transient of hundreds of m3/h (a pump stop seen
# a minute apart at the two ends) must not drag the bias for hours.
BIAS_CLIP_M3H = 60.0
FILL_FORWARD_MINUTES = 3  # a flow reading missing this long is carried forward; longer: degraded
CLOSE_WINDOW = 30  # minutes of balance the close rule looks at
CLOSE_AFTER = 30  # consecutive quiet minutes that close a tap incident
UPDATE_EVERY = 15  # minutes of event time between updates of an open incident
BAR_PER_GPA = 10_000.0
PRESSURE_CAP = 4.0
# The pressure step is fused with the balance's windows up to this long: a tap's step and the
# balance's excess start together; a longer window would carry the balance's slow tails into it.
PRESSURE_SHORT_MINUTES = 20
STEP_HOLD_M3H = 100.0  # a flow change this large in one minute at either end is a step (pump stop)
STEP_HOLD_MINUTES = 4  # minutes held from the step on: clock offsets (<= 2 min) and pack settling
# A step on a segment (a pump stop or restart) is followed on the *next* segment by the downstream
# station's recovery (it trims, its tank cascades): several m3 of balance over about half an hour
# that no step of its own announces. That segment is held this long from the step.
NEXT_SEGMENT_HOLD_MINUTES = 30
# An incident whose extraction has stopped (its 30-minute rate below half its peak for this long, and
# its 30-minute balance back below one sigma) is re-armed: the test runs again on the balance since
# the stop, and a new excursion there closes the incident at the stop and opens a new one. Without it
# a second theft on the segment within the hour the first incident takes to close fell inside the
# first and opened nothing (seeds 1001 and 1003: 20 and 26 m3 taps 42 and 33 minutes after the
# previous one ended).
REARM_AFTER_MINUTES = 15
# The re-armed test's limit, as a multiple of the segment's: while an incident is open the bias is
# frozen, so a meter drifting under it (one the mirror rule cannot see, on the first station) keeps
# the balance near the limit, and at the plain limit it re-armed 8 times in 2 days on seed 1001.
REARM_LIMIT_FACTOR = 1.5
# A segment re-arms at most once in this many minutes. Even at 1.5 x the limit, a flapping
# first-station flow-meter drift (seed 1001, EST-01, 2.5 days; the mirror rule cannot see the first
# station's meter) re-armed 8 times and raised all-cause alarms from 0.69 to 0.86-0.92 per
# station-month. Back-to-back taps are rare (2 of 154 thefts >= 8 m3 in 360 segment-days of the
# tuning seeds), so one re-arm per segment per 3 days keeps them and holds a drift longer than the
# spacing to one extra incident per 3 days.
REARM_SPACING_MINUTES = 3 * 1440
# The new excursion must come within this long of the stop. A long small tap (2-3 % of flow over
# 5 h) whose noisy 30-minute rate dipped below half its peak and one sigma read as stopped, and the
# tap going on reached the re-armed limit over the hours after (seeds 1002, 1003: 53-65 m3 taps
# split, their volumes read as 11-18 m3). The back-to-back taps it is for start 33-42 minutes after
# the previous one ends, 20-30 minutes after the stop is placed, and reach the limit in minutes.
REARM_WITHIN_MINUTES = 60


class TapIncident:
    """The open tap incident of a segment."""

    __slots__ = (
        "cum_at_onset",
        "cum_at_stop",
        "high_rate",
        "incident_id",
        "last_active",
        "last_report",
        "onset",
        "opened",
        "peak",
        "quiet",
        "rearmed",
        "stopped",
    )

    def __init__(self, incident_id: str, opened: int, onset: int, cum_at_onset: float, peak: float) -> None:
        self.incident_id = incident_id
        self.opened = opened
        self.onset = onset
        self.cum_at_onset = cum_at_onset
        self.last_report = opened
        self.quiet = 0
        self.peak = peak
        self.high_rate = 0.0  # the highest 30-minute balance rate seen while open
        self.last_active = opened  # the last minute that rate was at least half the highest
        # The first minute after the extraction stopped (-1: not yet), latched once it has stayed
        # stopped REARM_AFTER_MINUTES, and the cumulative residual then (the closed volume's end).
        self.stopped = -1
        self.cum_at_stop = math.nan
        self.rearmed = False  # closed by a new excursion after the stop (see REARM_AFTER_MINUTES)

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}
        data["cum_at_stop"] = None if math.isnan(self.cum_at_stop) else self.cum_at_stop  # JSON: no NaN
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TapIncident:
        incident = cls(
            str(data["incident_id"]),
            int(data["opened"]),
            int(data["onset"]),
            float(data["cum_at_onset"]),
            float(data["peak"]),
        )
        incident.last_report = int(data["last_report"])
        incident.quiet = int(data["quiet"])
        incident.high_rate = float(data["high_rate"])
        incident.last_active = int(data["last_active"])
        # A snapshot from before the re-arm holds no stop: the incident is still extracting.
        incident.stopped = int(data.get("stopped", -1))
        cum_at_stop = data.get("cum_at_stop")
        incident.cum_at_stop = math.nan if cum_at_stop is None else float(cum_at_stop)
        incident.rearmed = bool(data.get("rearmed", False))
        return incident


class Decision:
    """What one minute of a segment asks the monitor to emit."""

    __slots__ = ("evidence", "incident", "location", "status")

    def __init__(
        self,
        status: str,
        incident: TapIncident,
        evidence: dict[str, float],
        location: tuple[float, float] | None,
    ) -> None:
        self.status = status
        self.incident = incident
        self.evidence = evidence
        self.location = location


class SegmentState:
    """The state of one segment between minutes; ``step`` consumes one minute of both ends."""

    def __init__(self, segment: Segment, calibration: SegmentCalibration) -> None:
        self.segment = segment
        self.cal = calibration
        up, down = segment.upstream, segment.downstream
        self._flow_up = up.sensor("flow")
        self._pressure_up = up.sensor("pressure")
        self._flow_down = down.sensor("flow")
        self._level_down = down.sensor("tank_level")
        self._suction_down = down.sensor("suction_pressure")
        self._area = down.tank_area
        self._pack = segment.decl.volume_m3 / (segment.decl.bulk_modulus_gpa * BAR_PER_GPA)
        self._meters = [
            (meter.station_id, meter.sensor, -1.0 if meter.kind == "delivery" else 1.0)
            for meter in segment.decl.meter
        ]
        self._windows = calibration.windows
        self._sigma = calibration.window_sigma_m3
        self._longest = max(self._windows)
        # Per window, what the test's loop needs, worked out once: (window, sigma, the drift's
        # allowance over it, whether the pressure step spans it). Same expressions as before.
        self._window_terms = tuple(
            (window, sigma, calibration.drift_m3h * window / 60.0, window <= PRESSURE_SHORT_MINUTES)
            for window, sigma in zip(self._windows, self._sigma, strict=True)
        )
        # Gains on the upstream flow change at minute offsets -1, 0, +1, +2 (see skew_* fields).
        self._gains = (
            calibration.skew_gain_lag1,
            calibration.skew_gain,
            calibration.skew_gain_lead1,
            calibration.skew_gain_lead2,
        )
        self._lead = 2 if self._gains[3] else 1 if self._gains[2] else 0
        self.pressure = PressureTrack(segment, calibration)
        # (minute, balance before the skew correction, upstream flow change), per minute, for the
        # calibration; None in service. A held minute records NaN.
        self.trace: list[tuple[int, float, float]] | None = None
        self.blocked_minutes: list[int] = []  # minutes a neighbour's gain blocked this segment (trace)
        self.reset()

    def reset(self) -> None:
        self.minute = -1
        self.bias = self.cal.bias_m3h
        self.last_level: float | None = None
        self.last_pbar: float | None = None
        self.last_fu: float | None = None
        self.last_fd: float | None = None
        self.missing_flow = 0
        self.step_hold = 0
        self.step_started = False  # this minute's evaluation saw a step (read by the monitor)
        self.last_dfu = 0.0
        # (balance before skew, upstream flow change) not yet settled
        self.queue: deque[tuple[float, float]] = deque()
        self.cum = 0.0
        self.ring: deque[float] = deque([0.0], maxlen=self._longest + 1)
        self.cusum = 0.0
        self.cusum_start = 0
        self.statistic = 0.0
        self.gain = 0.0  # the same test for product appearing from nowhere (a meter reading high)
        self.blocked = False  # a neighbour shows the mirror image: a shared meter drifts
        self.mirrored = False  # this segment's gain is what blocks a neighbour
        self.argmax_window = 0
        self.balance = math.nan
        self.degraded: str | None = None
        self.incident: TapIncident | None = None
        self.last_rearm = -REARM_SPACING_MINUTES  # the minute of this segment's latest re-arm

    # -- one minute -----------------------------------------------------------------------------

    def step(
        self,
        minute: int,
        up: Mapping[str, float] | None,
        down: Mapping[str, float] | None,
        rows: Mapping[str, Mapping[str, float]],
        *,
        degraded: str | None,
        pressure_ok: bool,
    ) -> Decision | None:
        """Evaluate ``minute`` (epoch minutes); ``degraded`` names a meter fault that holds the test."""
        self.minute = minute
        self.step_started = False
        # The rows hold floats already (the monitor builds them); a missing row reads as an empty one.
        up_row = _NO_ROW if up is None else up
        down_row = _NO_ROW if down is None else down
        fu = up_row.get(self._flow_up)
        # NaN (an empty cell) reads as missing; ``x != x`` is the NaN test without a call (hot loop).
        if fu is not None and fu != fu:  # noqa: PLR0124 - NaN test
            fu = None
        fd = down_row.get(self._flow_down)
        if fd is not None and fd != fd:  # noqa: PLR0124 - NaN test
            fd = None
        if fu is None or fd is None:
            self.missing_flow += 1
            if self.missing_flow > FILL_FORWARD_MINUTES or self.last_fu is None or self.last_fd is None:
                degraded = degraded or "silent flow meter"
            fu = self.last_fu if fu is None else fu
            fd = self.last_fd if fd is None else fd
        else:
            self.missing_flow = 0
        if degraded is not None or fu is None or fd is None:
            if self.trace is not None:
                self.trace.append((minute, math.nan, 0.0))
            self._hold(degraded or "no flow yet")
            return None
        if self.degraded is not None:
            self._restart()
        balance = fu - fd
        if self._area is not None:
            level = down_row.get(self._level_down)
            if level is not None and level == level:  # noqa: PLR0124 - NaN test
                if self.last_level is not None:
                    balance -= self._area * (level - self.last_level) * 60.0
                self.last_level = level
        pu = up_row.get(self._pressure_up)
        ps = down_row.get(self._suction_down)
        if pu is not None and ps is not None and pu == pu and ps == ps:  # noqa: PLR0124 - NaN test
            pbar = 0.5 * (pu + ps)
            if self.last_pbar is not None:
                balance -= self._pack * (pbar - self.last_pbar) * 60.0
            self.last_pbar = pbar
        for station_id, sensor, sign in self._meters:
            metered = _value(rows.get(station_id), sensor)
            if metered is not None:
                balance += sign * metered
        dfu = fu - self.last_fu if self.last_fu is not None else 0.0
        dfd = fd - self.last_fd if self.last_fd is not None else 0.0
        self.last_fu, self.last_fd = fu, fd
        incident = self.incident
        pressure_z = self.pressure.step(
            minute,
            up,
            down,
            fu,
            pressure_ok,
            frozen=incident is not None,
            active=incident is not None and incident.last_active >= minute - 1,
        )
        if abs(dfu) > STEP_HOLD_M3H or abs(dfd) > STEP_HOLD_M3H:
            self.step_hold = STEP_HOLD_MINUTES
            self.step_started = True
        if self.step_hold > 0:
            # A pump stop or restart: the minutes around the step carry the clock offset between
            # the two ends and the line pack's settling; the windows restart after it.
            self.step_hold -= 1
            if self.trace is not None:
                self.trace.append((minute, math.nan, 0.0))
            self.queue.clear()
            self.last_dfu = 0.0
            self.ring = deque([self.cum], maxlen=self._longest + 1)
            self.cusum = 0.0
            self.statistic = 0.0
            self.balance = balance
            return self._decide(minute)
        if self.trace is not None:
            self.trace.append((minute, balance, dfu))
            if self.blocked or self.mirrored:
                self.blocked_minutes.append(minute)
        # The skew correction may need the upstream flow's change up to ``lead`` minutes later:
        # minute t is settled (and tested) once minute t + lead has arrived.
        queue = self.queue
        queue.append((balance, dfu))
        lead = self._lead
        if len(queue) <= lead:
            return None
        raw, change = queue.popleft()
        # ``queue`` now holds the ``lead`` minutes after the settled one (their flow changes).
        gains = self._gains
        balance = raw - gains[1] * change - gains[0] * self.last_dfu
        if lead:
            if gains[2]:
                balance -= gains[2] * queue[0][1]
            if lead > 1 and gains[3]:
                balance -= gains[3] * queue[1][1]
        self.last_dfu = change
        self.balance = balance
        residual = balance - self.bias
        self.cum += residual / 60.0
        self.ring.append(self.cum)
        self._test(residual, pressure_z)
        if self.incident is None and max(self.statistic, self.gain) < 0.5 * self.cal.limit:
            innovation = balance - self.bias
            # max(-clip, min(clip, innovation)), NaN included, without two calls per minute
            if not innovation < BIAS_CLIP_M3H:
                innovation = BIAS_CLIP_M3H
            elif not innovation > -BIAS_CLIP_M3H:
                innovation = -BIAS_CLIP_M3H
            self.bias += innovation / BIAS_MINUTES
        return self._decide(minute)

    def hold_after_neighbour_step(self, minutes: int) -> None:
        """Hold the test for the next ``minutes`` minutes (the upstream segment just saw a step)."""
        self.step_hold = max(self.step_hold, minutes)

    def _hold(self, reason: str) -> None:
        self.degraded = reason
        self.statistic = 0.0
        self.balance = math.nan

    def _restart(self) -> None:
        """Back from a degraded spell: the inventory terms restart from the next good reading."""
        self.degraded = None
        self.last_level = None
        self.last_pbar = None
        self.last_dfu = 0.0
        self.queue = deque()
        self.ring = deque([self.cum], maxlen=self._longest + 1)
        self.cusum = 0.0
        self.pressure.restart()

    def _test(self, residual: float, pressure_z: float) -> None:
        cal = self.cal
        if cal.method == "cusum":
            if self.cusum <= 0.0:
                self.cusum_start = self.minute
            self.cusum = max(0.0, self.cusum + (residual - cal.drift_m3h) / 60.0)
            self.statistic = self.cusum
            self.argmax_window = max(1, self.minute - self.cusum_start + 1)
            return
        ring = self.ring
        newest = ring[-1]
        available = len(ring) - 1
        best, best_window = -math.inf, 0
        short, short_window = -math.inf, 0  # the best over the windows the pressure step spans
        gain = 0.0
        for window, sigma, allowance, spanned in self._window_terms:
            if window > available:
                break
            excess = newest - ring[-1 - window]
            z = (excess - allowance) / sigma
            if z > best:
                best, best_window = z, window
            if spanned and z > short:
                short, short_window = z, window
            loss = (-excess - allowance) / sigma
            if loss > gain:  # noqa: PLR1730 - max(gain, loss) exactly (NaN included), no call
                gain = loss
        self.gain = gain
        if best_window == 0:
            best = 0.0
        if cal.pressure_weight > 0.0 and pressure_z > 0.0 and short_window and short > cal.pressure_gate:
            # The pressure test has its own limit (limit - pressure_shift): shifted onto the balance's.
            joint = fused(short, pressure_z, cal.pressure_weight, cal.pressure_cap) + cal.pressure_shift
            if joint > best:
                best, best_window = joint, short_window
        self.statistic = best
        self.argmax_window = best_window

    # -- incidents -------------------------------------------------------------------------------

    def _decide(self, minute: int) -> Decision | None:
        incident = self.incident
        if incident is None:
            if self.statistic < self.cal.limit or self.argmax_window == 0 or self.blocked:
                return None
            window = self._onset_lag()
            onset = minute - self._lead - window + 1
            incident = TapIncident("", minute, onset, self.ring[-1 - window], self.statistic)
            self.incident = incident
            self.pressure.freeze(onset, minute)
            return Decision("open", incident, self._evidence(), self._location(incident))
        incident.peak = max(incident.peak, self.statistic)
        rate = self.recent_rate()
        incident.high_rate = max(incident.high_rate, rate)
        if rate >= 0.5 * incident.high_rate:
            incident.last_active = minute
        if self._rearmed(incident, minute):
            decision = Decision("close", incident, self._evidence(), self._location(incident))
            self.incident = None
            self.cusum = 0.0
            self.pressure.release()
            return decision
        recent = min(CLOSE_WINDOW, len(self.ring) - 1)
        sigma = self._sigma_for(recent)
        quiet = recent > 0 and (self.ring[-1] - self.ring[-1 - recent]) < sigma
        incident.quiet = incident.quiet + 1 if quiet else 0
        if incident.quiet >= CLOSE_AFTER:
            decision = Decision("close", incident, self._evidence(), self._location(incident))
            self.incident = None
            self.ring = deque([self.cum], maxlen=self._longest + 1)
            self.cusum = 0.0
            self.pressure.release()
            return decision
        if minute - incident.last_report >= UPDATE_EVERY:
            incident.last_report = minute
            return Decision("update", incident, self._evidence(), self._location(incident))
        return None

    def _rearmed(self, incident: TapIncident, minute: int) -> bool:
        """Whether a new excursion since ``incident``'s extraction stopped ends it (see
        ``REARM_AFTER_MINUTES``); if so the windows restart at the stop, so the next minute opens the
        new incident from there."""
        if incident.stopped < 0:
            # Stopped: inactive this long and the 30-minute balance back below one sigma. A meter
            # drift or a tap that only dips keeps the balance up, and re-arming on it split one
            # event into many (seed 1001: 9 more incidents on a first-station flow-meter drift).
            if minute - incident.last_active < REARM_AFTER_MINUTES or incident.quiet == 0:
                return False
            # The stop must be seen in the balance: a pump stop or restart at either end restarts
            # the windows (``step_hold``), and the short ring after it reads as a stop while a long
            # tap goes on; its re-arm split the tap in two (held-out seed 1005: a 92 m3 tap read as
            # 30 m3). So the ring must span the stop and the 30 minutes before it; it stays short of
            # that until the tap's rate returns (``last_active`` moves on).
            if len(self.ring) - 1 < minute - incident.last_active + CLOSE_WINDOW:
                return False
            incident.stopped = incident.last_active + 1
            since = min(minute - incident.stopped + 1, len(self.ring) - 1)
            incident.cum_at_stop = self.ring[-1 - since]
        if minute - incident.stopped >= REARM_WITHIN_MINUTES:
            return False
        since = min(minute - incident.stopped + 1, len(self.ring) - 1)
        if self.blocked or since < self._windows[0] or minute - self.last_rearm < REARM_SPACING_MINUTES:
            return False
        ring, newest, best = self.ring, self.ring[-1], -math.inf
        for window, sigma, allowance, _ in self._window_terms:
            if window > since:
                break
            best = max(best, (newest - ring[-1 - window] - allowance) / sigma)
        if best < REARM_LIMIT_FACTOR * self.cal.limit:
            return False
        self.ring = deque(list(ring)[-1 - since :], maxlen=self._longest + 1)
        incident.rearmed = True
        self.last_rearm = minute
        return True

    def _location(self, incident: TapIncident) -> tuple[float, float] | None:
        rate, _ = self.estimate(incident)
        return self.pressure.location(rate, self.last_fu, stopped=incident.last_active < self.minute)

    def _onset_lag(self) -> int:
        """The changepoint: the lag (minutes) whose standardised cumulative excess is largest."""
        ring, cal = self.ring, self.cal
        newest = ring[-1]
        best, best_lag = -math.inf, max(1, min(self.argmax_window, len(ring) - 1))
        for lag in range(1, len(ring)):
            z = (newest - ring[-1 - lag] - cal.drift_m3h * lag / 60.0) / self._sigma_interp(lag)
            if z > best:
                best, best_lag = z, lag
        return best_lag

    def _sigma_interp(self, minutes: int) -> float:
        windows, sigma = self._windows, self._sigma
        if minutes <= windows[0]:
            return sigma[0]
        for i in range(1, len(windows)):
            if minutes <= windows[i]:
                share = (minutes - windows[i - 1]) / (windows[i] - windows[i - 1])
                return sigma[i - 1] + share * (sigma[i] - sigma[i - 1])
        return sigma[-1]

    def _sigma_for(self, minutes: int) -> float:
        for window, sigma in zip(self._windows, self._sigma, strict=True):
            if window >= minutes:
                return sigma
        return self._sigma[-1]

    def estimate(self, incident: TapIncident) -> tuple[float, float]:
        """(rate m3/h, volume m3) of ``incident`` so far (the open one, or the one just closed)."""
        if incident.rearmed:  # closed by a new excursion: its volume and spell end at the stop
            volume = max(incident.cum_at_stop - incident.cum_at_onset, 0.0)
            end = incident.stopped - 1 - CLOSE_WINDOW // 2
            return volume * 60.0 / max(end - incident.onset + 1, 1), volume
        volume = max(self.cum - incident.cum_at_onset, 0.0)
        # A 30-minute rate falls to half about 15 minutes after the extraction stops.
        end = self.minute if incident.last_active >= self.minute else incident.last_active - CLOSE_WINDOW // 2
        active = max(end - incident.onset + 1, 1)
        return volume * 60.0 / active, volume

    def recent_rate(self) -> float:
        recent = min(CLOSE_WINDOW, len(self.ring) - 1)
        if recent <= 0:
            return 0.0
        return (self.ring[-1] - self.ring[-1 - recent]) * 60.0 / recent

    def _evidence(self) -> dict[str, float]:
        evidence = {
            "balance_m3h": round(self.recent_rate(), 3),
            "statistic": round(self.statistic, 3),
            "window_minutes": float(self.argmax_window),
            "bias_m3h": round(self.bias, 3),
        }
        evidence.update(self.pressure.evidence())
        return evidence

    # -- snapshot --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "minute": self.minute,
            "bias": self.bias,
            "last_level": self.last_level,
            "last_pbar": self.last_pbar,
            "last_fu": self.last_fu,
            "last_fd": self.last_fd,
            "missing_flow": self.missing_flow,
            "last_dfu": self.last_dfu,
            "step_hold": self.step_hold,
            "queue": [list(entry) for entry in self.queue],
            "cum": self.cum,
            "ring": pack(self.ring),
            "cusum": self.cusum,
            "cusum_start": self.cusum_start,
            "statistic": self.statistic,
            "gain": self.gain,
            "blocked": self.blocked,
            "argmax_window": self.argmax_window,
            "balance": None if math.isnan(self.balance) else self.balance,
            "degraded": self.degraded,
            "incident": None if self.incident is None else self.incident.to_dict(),
            "last_rearm": self.last_rearm,
            "pressure": self.pressure.to_dict(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        self.minute = int(data["minute"])
        self.bias = float(data["bias"])
        self.last_level = _optional(data["last_level"])
        self.last_pbar = _optional(data["last_pbar"])
        self.last_fu = _optional(data["last_fu"])
        self.last_fd = _optional(data["last_fd"])
        self.missing_flow = int(data["missing_flow"])
        self.last_dfu = float(data["last_dfu"])
        self.step_hold = int(data["step_hold"])
        self.queue = deque((float(a), float(b)) for a, b in data["queue"])
        self.cum = float(data["cum"])
        self.ring = deque(unpack(data["ring"]), maxlen=self._longest + 1)
        self.cusum = float(data["cusum"])
        self.cusum_start = int(data["cusum_start"])
        self.statistic = float(data["statistic"])
        self.gain = float(data["gain"])
        self.blocked = bool(data["blocked"])
        self.argmax_window = int(data["argmax_window"])
        balance = data["balance"]
        self.balance = math.nan if balance is None else float(balance)
        self.degraded = None if data["degraded"] is None else str(data["degraded"])
        incident = data["incident"]
        self.incident = None if incident is None else TapIncident.from_dict(incident)
        # A snapshot from before the spacing holds no re-arm: the segment may re-arm at once.
        self.last_rearm = int(data.get("last_rearm", -REARM_SPACING_MINUTES))
        self.pressure.restore(data["pressure"])


def fused(balance_z: float, pressure_z: float, weight: float, cap: float = PRESSURE_CAP) -> float:
    """Balance and pressure evidence in one z; the pressure's share is capped at ``cap`` sigma."""
    return (balance_z + weight * min(pressure_z, cap)) / math.sqrt(1.0 + weight * weight)


_NO_ROW: Mapping[str, float] = {}


def _value(row: Mapping[str, float] | None, name: str) -> float | None:
    if row is None:
        return None
    value = row.get(name)
    if value is None or math.isnan(value):  # NaN: an empty cell
        return None
    return float(value)


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)
