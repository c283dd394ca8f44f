"""Calibrate each declared segment's sequential test on the training period.

The same machinery as the live monitor runs over the training history (``LineMonitor`` with its
per-minute trace switched on), so what is learned is what the service will compute. Per segment:

1. **Clock skew.** A clock offset between the two stations turns every upstream flow step into a
   balance spike of ``-d * dflow`` (``d`` in minutes) that does not telescope. Least squares of
   the balance on the upstream flow change (this minute and the previous one) gives the gains the
   monitor subtracts.
2. **Bias** (meter calibration offsets): the median corrected balance; the monitor tracks it from
   there.
3. **Spread per window**: the cumulative residual ``V_W`` over each test window ``W``, on normal
   minutes only (``exclude`` rows and the hour after them left out), gives ``sigma_W`` (a robust
   scale: the larger of the standard deviation of the central 98 % and 1.4826 MAD).
4. **Decision limit** for ``budget_per_segment_month``: the statistic's excursions above 2.0
   (separated by an hour) are peaks; their tail above the upper quartile is fitted with an
   exponential (peaks-over-threshold) and the limit set where the fitted rate meets the budget,
   times ``TAIL_MARGIN``, never below ``MIN_LIMIT``. The largest normal peak does not set a floor:
   with two months of training one odd event (a meter drift, an unusual pump-stop recovery) would
   otherwise blind the segment for the whole service. Only with too few peaks to fit (fewer than
   ``MIN_TAIL_PEAKS``) does the limit fall back to the largest peak × ``PEAK_MARGIN``.
   ``LineCalibration.record`` says, per segment, the peaks, the fit and which rule set the limit.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from detector.line.calibration import (
    DEFAULT_WINDOWS,
    LineCalibration,
    SegmentCalibration,
    default_window_sigma,
)
from detector.line.monitor import LineMonitor
from detector.line.pressure import (
    MEAN_MINUTES,
    MIN_FLOW_SHARE,
    OFFSET_CLIP_BAR,
    OFFSET_MINUTES,
    Q_REF,
    STEADY_CHANGE,
    STEADY_MINUTES,
    STEP_BASE_MINUTES,
    STEP_MINUTES,
)
from detector.line.segment import BIAS_CLIP_M3H, BIAS_MINUTES, PRESSURE_SHORT_MINUTES
from detector.topology import Topology

Array = npt.NDArray[np.float64]

RECOVERY_MINUTES = 60  # after an excluded row the line is not yet back to normal
DRIFT_RECOVERY_MINUTES = 12 * 60  # after a drifting meter, the bias tracker's time constant
# The tracing pass runs the monitor with the untrained limit so that its meter checks (the drift
# rule compares a gain with the limit) judge the history as the service would; the trace itself is
# the raw balance, which incidents do not change.
TRACE_LIMIT = 6.0
EXCURSION_BASE = 2.0  # statistic level that starts an excursion
EXCURSION_GAP = 60  # minutes below the base that end one
PEAK_MARGIN = 1.1  # only when too few peaks to fit a tail
TAIL_MARGIN = 1.0  # safety factor on the fitted tail's budget level
MIN_TAIL_PEAKS = 8
SKEW_OFFSETS = (-1, 0, 1, 2)
MIN_SKEW_GAIN = 0.15
STEP_M3H = 25.0  # an upstream flow change this large in a minute is a step (5 % of a 500 m3/h line)
CUSUM_REFERENCE_M3H = 5.0  # the baseline CUSUM's k: half of a 2 % tap on a 500 m3/h line
MIN_LIMIT = 4.0
# With pressure evidence, the share of the false-alarm budget the pressure test gets (the balance
# test keeps the rest; seeds 1001-1002 screened 0.2 / 0.3 / 0.5 alike).
PRESSURE_BUDGET_SHARE = 0.3
# The fused pressure test by default (study: docs/line.md): weight 1, the step confirmed by the drop
# against the slow offset, its share capped at 20 sigma (a bound, not a tuning), and only where the
# balance's best short window already exceeds 1 sigma.
PRESSURE_WEIGHT = 1.0
FUSED_PRESSURE_CAP = 20.0
PRESSURE_GATE = 1.0
MINUTES_PER_MONTH = 30 * 24 * 60


def calibrate_line(
    frame: pd.DataFrame,
    topology: Topology,
    *,
    budget_per_segment_month: float = 1.0,
    exclude: pd.Series | None = None,
    method: str = "windows",
    pressure_weight: float = PRESSURE_WEIGHT,
    pressure_evidence: str = "confirmed_step",
    pressure_cap: float = FUSED_PRESSURE_CAP,
    pressure_gate: float = PRESSURE_GATE,
    pressure_budget_share: float = PRESSURE_BUDGET_SHARE,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
) -> LineCalibration:
    """Thresholds for every segment of ``topology`` from normal history.

    ``frame``: one row per station and minute, columns ``timestamp`` (tz-aware UTC), ``station_id``
    and the reading fields the topology uses (empty cells = missing). ``exclude``: a boolean Series
    aligned with ``frame``, True on rows known not to be normal (labelled events); those minutes
    (and the recovery after them) do not count towards the false-alarm budget.
    ``pressure_weight`` > 0 fuses the pressure evidence into the test: ``pressure_evidence`` "step"
    (the residual's local step, see ``detector/line/pressure.py``), "confirmed_step" (the step as far
    as the drop against the slow offset confirms it) or "drop" (against the offset),
    its share capped at ``pressure_cap`` sigma, counted where the balance's z exceeds ``pressure_gate``,
    with ``pressure_budget_share`` of the budget (the balance test keeps the rest). ``windows``: the
    balance test's windows (minutes, increasing).
    """
    if budget_per_segment_month <= 0:
        raise ValueError("budget_per_segment_month must be positive")
    if not 0.0 < pressure_budget_share < 1.0:
        raise ValueError("pressure_budget_share must be between 0 and 1")
    if pressure_evidence not in ("drop", "step", "confirmed_step"):
        raise ValueError(f"pressure_evidence {pressure_evidence!r} is not drop, step or confirmed_step")
    if not windows or list(windows) != sorted(set(windows)) or windows[0] < 1:
        raise ValueError(f"windows {windows!r} must be positive minutes in increasing order")
    base = LineCalibration(
        {
            s.segment_id: SegmentCalibration(
                s.segment_id,
                limit=TRACE_LIMIT,
                method=method,
                windows=tuple(windows),
                window_sigma_m3=default_window_sigma(tuple(windows)),
            )
            for s in topology.segments
        },
        budget_per_segment_month,
    )
    traces, pressure_traces, blocked = _trace(frame, topology, base)
    excluded = _excluded_minutes(frame, exclude)
    segments: dict[str, SegmentCalibration] = {}
    record: dict[str, Any] = {"budget_per_segment_month": budget_per_segment_month, "segments": {}}
    for segment in topology.segments:
        minutes, balance, dfu = traces[segment.segment_id]
        # A meter the monitor judged drifting, and the hours after it (the bias re-settles), are not
        # normal operation either: they would set the limit to the fault's size.
        suspect = _spread(np.asarray(blocked[segment.segment_id], dtype=np.float64), DRIFT_RECOVERY_MINUTES)
        normal = np.isfinite(balance) & ~np.isin(minutes, excluded) & ~np.isin(minutes, suspect)
        calibration, notes, pressure_z = _calibrate_pressure(
            base.segment(segment.segment_id),
            pressure_traces[segment.segment_id],
            minutes,
            normal,
            step=pressure_evidence != "drop",
            confirm=pressure_evidence == "confirmed_step",
        )
        calibration, more = _calibrate_segment(
            replace(
                calibration,
                pressure_weight=pressure_weight,
                pressure_cap=pressure_cap,
                pressure_gate=pressure_gate,
            ),
            minutes,
            balance,
            dfu,
            normal=normal,
            budget=budget_per_segment_month,
            pressure_z=pressure_z,
            pressure_share=pressure_budget_share,
        )
        notes.update(more)
        segments[segment.segment_id] = calibration
        record["segments"][segment.segment_id] = notes
    if len(frame):
        record["training_start"] = str(frame["timestamp"].min())
        record["training_end"] = str(frame["timestamp"].max())
    record["rule"] = (
        f"limit = max(exponential tail of excursion peaks at the budget x {TAIL_MARGIN}, {MIN_LIMIT}); "
        f"fewer than {MIN_TAIL_PEAKS} peaks: max(largest normal peak x {PEAK_MARGIN}, {MIN_LIMIT})"
    )
    return LineCalibration(segments, budget_per_segment_month, record)


def _trace(
    frame: pd.DataFrame, topology: Topology, calibration: LineCalibration
) -> tuple[dict[str, tuple[Array, Array, Array]], dict[str, Array], dict[str, list[int]]]:
    monitor = LineMonitor(topology, calibration, model_version="calibration", clock=lambda: _EPOCH)
    states = list(monitor.segment_states())
    for state in states:
        state.trace = []
        state.pressure.trace = []
    fields = sorted(topology.required_sensors() & set(frame.columns))
    ordered = frame.sort_values("timestamp", kind="stable")
    stamps = list(ordered["timestamp"].dt.tz_convert(UTC).dt.to_pydatetime())
    stations = ordered["station_id"].astype(str).to_numpy()
    columns = [ordered[name].to_numpy(dtype=np.float64) for name in fields]
    for i in range(len(ordered)):
        values = {name: column[i] for name, column in zip(fields, columns, strict=True)}
        monitor.add(stations[i], stamps[i], values)
        monitor.advance()
    monitor.flush()
    out: dict[str, tuple[Array, Array, Array]] = {}
    pressure: dict[str, Array] = {}
    blocked = {state.segment.segment_id: list(state.blocked_minutes) for state in states}
    for state in states:
        trace = state.trace or []
        out[state.segment.segment_id] = (
            np.array([row[0] for row in trace], dtype=np.int64).astype(np.float64),
            np.array([row[1] for row in trace], dtype=np.float64),
            np.array([row[2] for row in trace], dtype=np.float64),
        )
        rows = state.pressure.trace or []
        pressure[state.segment.segment_id] = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return out, pressure, blocked


def _spread(minutes: Array, after: int) -> Array:
    """``minutes`` and the ``after`` minutes that follow each."""
    if not len(minutes):
        return minutes
    spread = minutes[:, None] + np.arange(after + 1)[None, :]
    return np.asarray(np.unique(spread.reshape(-1)), dtype=np.float64)


def _excluded_minutes(frame: pd.DataFrame, exclude: pd.Series | None) -> Array:
    if exclude is None or not bool(exclude.any()):
        return np.array([], dtype=np.float64)
    stamps = frame.loc[exclude.to_numpy(dtype=bool), "timestamp"]
    minutes = np.unique(np.round(stamps.astype("int64").to_numpy() / 60e9))
    spread = minutes[:, None] + np.arange(RECOVERY_MINUTES + 1)[None, :]
    return np.unique(spread.reshape(-1)).astype(np.float64)


def _calibrate_segment(
    default: SegmentCalibration,
    minutes: Array,
    balance: Array,
    dfu: Array,
    *,
    normal: npt.NDArray[np.bool_],
    budget: float,
    pressure_z: Array,
    pressure_share: float = PRESSURE_BUDGET_SHARE,
) -> tuple[SegmentCalibration, dict[str, Any]]:
    notes: dict[str, Any] = {"normal_minutes": int(normal.sum())}
    if normal.sum() < 24 * 60:
        notes["rule"] = "too little normal data: untrained defaults"
        return replace(default, limit=8.0), notes
    # The upstream flow change at offsets -1, 0, +1, +2 minutes (a clock offset of either sign).
    shifted = np.column_stack([_shift(dfu, offset) for offset in SKEW_OFFSETS])
    # Only real steps say anything about a clock offset: on small changes the meter's own AR noise
    # correlates with its increments and would bias the fit.
    steps = normal & (np.abs(shifted) > STEP_M3H).any(axis=1)
    gains = np.zeros(len(SKEW_OFFSETS))
    if steps.sum() >= 10:
        design = np.column_stack([np.ones(int(steps.sum())), shifted[steps]])
        coef, *_ = np.linalg.lstsq(design, balance[steps], rcond=None)
        # Gains too small to matter are dropped: a lead gain costs a minute of latency.
        gains = np.where(np.abs(coef[1:]) >= MIN_SKEW_GAIN, coef[1:], 0.0)
    notes["skew_steps"] = int(steps.sum())
    notes["skew_gains"] = {str(o): round(float(g), 4) for o, g in zip(SKEW_OFFSETS, gains, strict=True)}
    corrected = np.where(np.isfinite(balance), balance - shifted @ gains, np.nan)
    bias0 = float(np.median(corrected[normal]))
    residual = _tracked_residual(corrected, bias0)
    cum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(residual) / 60.0)])
    # A window is usable when every minute in it is normal (and the trace has no gap).
    bad = np.concatenate([[0], np.cumsum(~normal)])
    sigmas: list[float] = []
    window_values: list[Array] = []
    for window in default.windows:
        if len(residual) <= window:
            sigmas.append(default.window_sigma_m3[len(sigmas)])
            window_values.append(np.zeros(0))
            continue
        values = cum[window:] - cum[:-window]
        clean = (bad[window:] - bad[:-window]) == 0
        span_ok = (minutes[window - 1 :] - minutes[: len(minutes) - window + 1]) == window - 1
        usable = values[clean & span_ok]
        sigmas.append(_robust_scale(usable, fallback=default.window_sigma_m3[len(sigmas)]))
        full = np.full(len(residual), np.nan)
        full[window - 1 :] = np.where(clean & span_ok, values, np.nan)
        window_values.append(full)
    drift = max(0.5, float(np.std(_hourly_means(corrected[normal]))) * 0.5)
    statistic = np.full(len(residual), -np.inf)
    short = np.full(len(residual), -np.inf)  # the windows the pressure step is fused with
    for window, sigma, values in zip(default.windows, sigmas, window_values, strict=True):
        if len(values):
            z = (values - drift * window / 60.0) / sigma
            statistic = np.fmax(statistic, z)
            if window <= PRESSURE_SHORT_MINUTES:
                short = np.fmax(short, z)
    shift = 0.0
    if default.method == "cusum":
        drift = CUSUM_REFERENCE_M3H
        statistic = _cusum(residual, normal, drift)
        limit, tail = _limit_for_budget(statistic, normal, budget)
    elif default.pressure_weight > 0 and default.pressure_coef:
        # Two tests, each on its share of the budget: the balance alone, and the pressure step fused
        # with the balance's short windows where the balance agrees (see detector/line/segment.py).
        weight = default.pressure_weight
        fused = (short + weight * np.minimum(pressure_z, default.pressure_cap)) / math.sqrt(
            1 + weight * weight
        )
        joint = np.where((pressure_z > 0) & (short > default.pressure_gate), fused, -np.inf)
        limit, tail = _limit_for_budget(statistic, normal, budget * (1.0 - pressure_share))
        pressure_limit, pressure_tail = _limit_for_budget(joint, normal, budget * pressure_share)
        shift = limit - pressure_limit
        tail["pressure_test"] = pressure_tail | {"limit": round(pressure_limit, 3)}
        statistic = np.fmax(statistic, joint + shift)
    else:
        limit, tail = _limit_for_budget(statistic, normal, budget)
    if len(statistic) and np.isfinite(np.where(normal, statistic, -np.inf)).any():
        at = int(np.nanargmax(np.where(normal, statistic, -np.inf)))
        tail["largest_peak_at"] = pd.Timestamp(int(minutes[at]) * 60, unit="s", tz="UTC").isoformat()
    notes.update(tail)
    notes.update(
        {
            "bias_m3h": round(bias0, 3),
            "window_sigma_m3": [round(s, 3) for s in sigmas],
            "drift_m3h": round(drift, 3),
            "limit": round(limit, 3),
        }
    )
    return (
        replace(
            default,
            bias_m3h=bias0,
            sigma_m3h=float(np.std(corrected[normal])),
            drift_m3h=drift,
            limit=limit,
            windows=default.windows,
            window_sigma_m3=tuple(sigmas),
            skew_gain_lag1=float(gains[0]),
            skew_gain=float(gains[1]),
            skew_gain_lead1=float(gains[2]),
            skew_gain_lead2=float(gains[3]),
            pressure_shift=shift,
        ),
        notes,
    )


def _calibrate_pressure(
    default: SegmentCalibration,
    trace: Array,
    minutes: Array,
    normal: npt.NDArray[np.bool_],
    *,
    step: bool = False,
    confirm: bool = False,
) -> tuple[SegmentCalibration, dict[str, Any], Array]:
    """Fit the expected upstream head and emulate the live pressure z on the balance's minutes.

    ``step``: also learn the local step's spread per span and emulate its z (else the drop's).
    """
    notes: dict[str, Any] = {}
    z_out = np.zeros(len(minutes))
    if len(trace) < 24 * 60:
        notes["pressure"] = "too little pressure data: off"
        return default, notes, z_out
    p_minute, y, r, qn, d, flow = (trace[:, i] for i in range(6))
    normal_minutes = set(minutes[normal].tolist())
    ok = np.array([m in normal_minutes for m in p_minute.tolist()]) & _steady_mask(flow)
    if ok.sum() < 12 * 60:
        notes["pressure"] = "too few steady normal minutes: off"
        return default, notes, z_out
    features = np.column_stack([np.ones(len(y)), r, r * qn, r * d * qn, r * d * d * qn])
    coef, *_ = np.linalg.lstsq(features[ok], y[ok], rcond=None)
    residual = y - features @ coef
    drops = _emulate_drops(residual, flow)
    usable = ok & np.isfinite(drops)
    sigma = _robust_scale(drops[usable], fallback=default.pressure_sigma_bar)
    z_minute = np.nan_to_num(drops / sigma)
    step_sigmas: tuple[float, ...] = ()
    if step:
        steps = _local_steps(np.where(_steady_mask(flow), residual, np.nan), p_minute)
        # The spread is learned, and the limit set, on normal minutes only: a span that touches an
        # excluded minute is left out, as the balance's windows are.
        clean = _local_steps(np.where(ok, residual, np.nan), p_minute)
        step_sigmas = tuple(
            _robust_scale(values[np.isfinite(values)], fallback=default.pressure_sigma_bar)
            for values in clean
        )
        z_minute = np.zeros(len(p_minute))
        for values, scale in zip(clean, step_sigmas, strict=True):
            z_minute = np.fmax(z_minute, np.nan_to_num(values / scale, nan=0.0))
        if confirm:
            z_minute = np.maximum(np.fmin(z_minute, np.nan_to_num(drops, nan=0.0) / min(step_sigmas)), 0.0)
        notes["pressure_step_sigma_bar"] = [round(v, 4) for v in step_sigmas]
        notes["pressure_step_live_minutes"] = int(np.isfinite(steps[0]).sum())
    z_by_minute = dict(zip(p_minute.tolist(), z_minute.tolist(), strict=True))
    z_out = np.array([z_by_minute.get(m, 0.0) for m in minutes.tolist()])
    friction = float(np.median((r * qn * (coef[2] + coef[3] * d + coef[4] * d * d))[ok]))
    notes.update(
        {
            "pressure_coef": [round(float(c), 4) for c in coef],
            "pressure_fit_rms_bar": round(float(np.std(residual[ok])), 4),
            "pressure_sigma_bar": round(sigma, 4),
            "friction_bar_median": round(friction, 3),
        }
    )
    return (
        replace(
            default,
            pressure_coef=tuple(float(c) for c in coef),
            pressure_sigma_bar=sigma,
            drop_full_bar_per_m3h=1.8 * friction / 500.0,
            pressure_step_sigma_bar=step_sigmas,
            pressure_step_confirm=confirm,
        ),
        notes,
        z_out,
    )


def _steady_mask(flow: Array) -> npt.NDArray[np.bool_]:
    series = pd.Series(flow)
    rolling = series.rolling(STEADY_MINUTES, min_periods=STEADY_MINUTES)
    spread = rolling.max() - rolling.min()
    steady = (spread <= STEADY_CHANGE * series) & (series >= MIN_FLOW_SHARE * Q_REF)
    return np.asarray(steady.to_numpy(dtype=bool), dtype=np.bool_)


def _local_steps(residual: Array, minute: Array) -> list[Array]:
    """Per span ``k`` of ``STEP_MINUTES``: the mean of the ``STEP_BASE_MINUTES`` before the last ``k``
    minutes less the mean of those ``k`` (NaN where the span holds a NaN or a gap in ``minute``),
    as ``PressureTrack`` computes it live."""
    if not len(minute):
        return [np.zeros(0) for _ in STEP_MINUTES]
    first = int(minute[0])
    full = np.full(int(minute[-1]) - first + 1, np.nan)
    full[minute.astype(np.int64) - first] = residual
    series = pd.Series(full)
    out: list[Array] = []
    for k in STEP_MINUTES:
        recent = series.rolling(k, min_periods=k).mean()
        before = series.shift(k).rolling(STEP_BASE_MINUTES, min_periods=STEP_BASE_MINUTES).mean()
        values = (before - recent).to_numpy(dtype=np.float64)
        out.append(np.asarray(values[minute.astype(np.int64) - first], dtype=np.float64))
    return out


def _emulate_drops(residual: Array, flow: Array) -> Array:
    """The live drop (offset less the 5-minute mean residual) per minute, NaN where held."""
    steady = _steady_mask(flow)
    drops = np.full(len(residual), np.nan)
    offset: float | None = None
    recent: list[float] = []
    for i, (value, ok) in enumerate(zip(residual.tolist(), steady.tolist(), strict=True)):
        if not ok:
            recent.clear()
            continue
        if offset is None:
            offset = 0.0
        recent.append(value)
        if len(recent) > MEAN_MINUTES:
            recent.pop(0)
        if len(recent) == MEAN_MINUTES:
            drops[i] = offset - sum(recent) / MEAN_MINUTES
        offset += max(-OFFSET_CLIP_BAR, min(OFFSET_CLIP_BAR, value - offset)) / OFFSET_MINUTES
    return drops


def _shift(values: Array, offset: int) -> Array:
    """``values[t + offset]`` at ``t`` (zeros where that falls outside)."""
    out = np.zeros(len(values))
    if offset >= 0:
        out[: len(values) - offset] = values[offset:]
    else:
        out[-offset:] = values[:offset]
    return out


def _cusum(residual: Array, normal: npt.NDArray[np.bool_], reference: float) -> Array:
    """The live CUSUM (m3) on the residual, restarted wherever the trace is not normal."""
    out = np.zeros(len(residual))
    total = 0.0
    for i, (value, ok) in enumerate(zip(residual.tolist(), normal.tolist(), strict=True)):
        if not ok or math.isnan(value):
            total = 0.0
            continue
        total = max(0.0, total + (value - reference) / 60.0)
        out[i] = total
    return out


def _tracked_residual(corrected: Array, bias0: float) -> Array:
    """The residual the monitor sees: the balance less a slowly tracked bias (EWMA, as live)."""
    residual = np.full(len(corrected), np.nan)
    bias = bias0
    for i, value in enumerate(corrected.tolist()):
        if not math.isnan(value):
            residual[i] = value - bias
            bias += max(-BIAS_CLIP_M3H, min(BIAS_CLIP_M3H, value - bias)) / BIAS_MINUTES
    return residual


def _hourly_means(values: Array) -> Array:
    hours = len(values) // 60
    if hours < 2:
        return np.zeros(2)
    return np.asarray(values[: hours * 60].reshape(hours, 60).mean(axis=1), dtype=np.float64)


def _robust_scale(values: Array, *, fallback: float) -> float:
    if len(values) < 100:
        return fallback
    low, high = np.quantile(values, [0.01, 0.99])
    central = values[(values >= low) & (values <= high)]
    mad = float(np.median(np.abs(values - np.median(values)))) * 1.4826
    return max(float(np.std(central)), mad, 0.1)


def _limit_for_budget(
    statistic: Array, normal: npt.NDArray[np.bool_], budget: float
) -> tuple[float, dict[str, Any]]:
    months = float(normal.sum()) / MINUTES_PER_MONTH
    peaks: list[float] = []
    current = -math.inf
    below = EXCURSION_GAP
    for value, ok in zip(statistic.tolist(), normal.tolist(), strict=True):
        if not ok or math.isnan(value):
            continue
        if value >= EXCURSION_BASE:
            current = max(current, value)
            below = 0
        else:
            below += 1
            if below == EXCURSION_GAP and current > -math.inf:
                peaks.append(current)
                current = -math.inf
    if current > -math.inf:
        peaks.append(current)
    largest = max(peaks, default=EXCURSION_BASE)
    notes: dict[str, Any] = {
        "months": round(months, 3),
        "peaks": len(peaks),
        "largest_peak": round(largest, 3),
    }
    if len(peaks) >= MIN_TAIL_PEAKS:
        ordered = np.sort(np.array(peaks))
        threshold = float(np.quantile(ordered, 0.75))
        excess = ordered[ordered > threshold] - threshold
        scale = max(float(excess.mean()) if len(excess) else 0.5, 0.2)
        rate = len(excess) / months
        tail_limit = threshold + scale * math.log(max(rate / budget, 1.0))
        notes.update(
            {
                "tail_threshold": round(threshold, 3),
                "tail_scale": round(scale, 3),
                "tail_limit": round(tail_limit, 3),
            }
        )
        limit = max(tail_limit * TAIL_MARGIN, MIN_LIMIT)
        notes["limit_rule"] = "tail" if tail_limit * TAIL_MARGIN >= MIN_LIMIT else "minimum"
        notes["peaks_above_limit"] = int((ordered > limit).sum())
    else:
        limit = max(largest * PEAK_MARGIN, MIN_LIMIT)
        notes["limit_rule"] = "too few peaks: largest peak x margin"
    return float(limit), notes


_EPOCH = pd.Timestamp(0, tz="UTC").to_pydatetime()
