from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.errors import ConfigError
from trainer.model import parse_units
from trainer.sweep import FULL_GRID, build_grid, parse_grid, rank, read_results, trial_key


def test_default_grid_is_small_and_mirrors_the_decoder() -> None:
    trials = build_grid({})
    assert len(trials) == 8
    for trial in trials:
        assert trial["decoder_units"] == list(reversed(trial["encoder_units"]))


def test_full_grid_is_the_originals_and_overrides_replace_dimensions() -> None:
    assert len(build_grid({}, full=True)) == 2304
    assert FULL_GRID["window"] == [24, 36, 48]
    trials = build_grid({"window": [12], "encoder_units": [(8,)]})
    assert {t["window"] for t in trials} == {12}
    assert len(trials) == 1


def test_grid_parsing() -> None:
    assert parse_grid("window", "24, 36,48") == [24, 36, 48]
    assert parse_grid("learning_rate", "1e-3,5e-4") == [1e-3, 5e-4]
    assert parse_grid("encoder_units", "128,64;64,32") == [(128, 64), (64, 32)]
    assert parse_units("128 64", "--encoder-units") == (128, 64)
    with pytest.raises(ConfigError, match="--window-grid"):
        parse_grid("window", "a,b")


def test_results_file_resumes_and_ignores_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "sweep.jsonl"
    record = {"key": trial_key({"window": 24}), "validation": {"f1": 0.5}, "test": {"f1": 0.9}}
    path.write_text(json.dumps(record) + "\n" + '{"key": "half')
    assert list(read_results(path)) == [record["key"]]


def test_ranking_uses_validation_never_test() -> None:
    a = {"validation": {"f1": 0.9, "average_precision": 0.8}, "test": {"f1": 0.1}}
    b = {"validation": {"f1": 0.5, "average_precision": 0.99}, "test": {"f1": 0.99}}
    c = {"validation": {"f1": 0.9, "average_precision": 0.9}, "test": {"f1": 0.0}}
    assert rank([a, b, c]) == [c, a, b]
