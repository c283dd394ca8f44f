"""The score-over-time plot draws one line per station, broken at gaps (no invented diagonals)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.plots import _broken_at_gaps, error_over_time

STEP = np.timedelta64(5, "m")


def test_a_gap_longer_than_three_steps_breaks_the_line_and_short_ones_do_not() -> None:
    ends = np.arange(np.datetime64("2026-01-01T00:00"), np.datetime64("2026-01-01T02:00"), STEP)
    holed = np.concatenate([ends[:5], ends[10:]])  # 25 minutes missing
    x, y = _broken_at_gaps(holed, np.ones(len(holed)))
    assert len(x) == len(holed) + 1 and int(np.isnan(y).sum()) == 1
    assert np.isnan(y[5]) and ends[4] < x[5] < ends[10]
    jittered = np.concatenate([ends[:5], ends[6:]])  # one window missing: still one line
    assert not np.isnan(_broken_at_gaps(jittered, np.ones(len(jittered)))[1]).any()


@pytest.mark.slow  # the first matplotlib import and a PNG (3 s)
def test_several_stations_are_drawn_as_several_lines(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    ends = np.arange(np.datetime64("2026-01-01T00:00"), np.datetime64("2026-01-01T01:00"), STEP)
    both = np.concatenate([ends, ends])
    stations = np.array(["EST-01"] * len(ends) + ["EST-02"] * len(ends))
    created: list[object] = []
    original = plt.subplots

    def spy(*args: object, **kwargs: object) -> object:
        fig, ax = original(*args, **kwargs)
        created.append(ax)
        return fig, ax

    plt.subplots = spy  # type: ignore[assignment]
    try:
        error_over_time(
            both,
            np.arange(len(both), dtype=float),
            np.zeros(len(both), np.int8),
            5.0,
            tmp_path / "e.png",
            station_ids=stations,
        )
    finally:
        plt.subplots = original  # type: ignore[assignment]
    (ax,) = created
    lines = [line for line in ax.get_lines() if line.get_label().startswith("score ")]  # type: ignore[attr-defined]
    assert [line.get_label() for line in lines] == ["score EST-01", "score EST-02"]
    assert all(len(line.get_xdata()) == len(ends) for line in lines)
    assert (tmp_path / "e.png").stat().st_size > 0


@pytest.mark.slow  # matplotlib and a PNG (3 s when it is the first)
def test_plots_speak_the_report_s_language(tmp_path: Path) -> None:
    from trainer import plots

    assert plots._t("threshold") == "threshold"  # English outside write_plots
    token = plots._language.set("es")
    try:
        assert plots._t("threshold") == "umbral"
        assert plots._t("no translation for this") == "no translation for this"
        path = plots.training_curves({"loss": [1.0, 0.5]}, tmp_path / "curves.png")
    finally:
        plots._language.reset(token)
    assert path.stat().st_size > 0 and plots._t("epoch") == "epoch"
