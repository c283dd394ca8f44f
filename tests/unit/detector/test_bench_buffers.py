from __future__ import annotations

import pytest

from bench.buffers import TARGET_BYTES, bytes_per_station


@pytest.mark.slow
def test_a_station_buffer_stays_under_the_memory_target() -> None:
    measured = bytes_per_station(300)
    assert 500 < measured < TARGET_BYTES
