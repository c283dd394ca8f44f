from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.line.packing import pack, pack_pairs, unpack, unpack_pairs


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True)))
def test_packed_floats_come_back_bit_for_bit(values: list[float]) -> None:
    back = unpack(pack(values))
    assert [struct.pack("<d", v) for v in back] == [struct.pack("<d", v) for v in values]


@given(st.lists(st.tuples(st.floats(allow_nan=False), st.floats(allow_nan=False))))
def test_packed_pairs_come_back(pairs: list[tuple[float, float]]) -> None:
    assert unpack_pairs(pack_pairs(pairs)) == [list(pair) for pair in pairs]


def test_plain_lists_of_an_older_snapshot_are_read_as_they_were() -> None:
    assert unpack([1, 2.5, -0.0]) == [1.0, 2.5, -0.0]
    assert unpack_pairs([[1, 800.0], [2.0, 810]]) == [[1.0, 800.0], [2.0, 810.0]]
    assert math.copysign(1.0, unpack([-0.0])[0]) == -1.0


def test_packing_takes_about_half_the_characters_of_json_numbers() -> None:
    values = [math.pi * k / 7.0 for k in range(161)]
    assert len(pack(values)) < 0.6 * len(str(values))


@pytest.mark.parametrize("bad", ["not base64!", "AAAA", 3.0, {"a": 1}, None])
def test_what_is_not_packed_floats_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        unpack(bad)
    with pytest.raises(ValueError):
        unpack_pairs(bad)


def test_an_odd_number_of_floats_is_not_pairs() -> None:
    with pytest.raises(ValueError, match="odd"):
        unpack_pairs(pack([1.0, 2.0, 3.0]))
