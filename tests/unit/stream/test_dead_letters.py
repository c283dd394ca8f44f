"""Dead letters fit under the dead-letter topic's limit whatever they carry."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.dead_letters import MIN_LIMIT, fit_dead_letter, message_size, usable_limit
from tests.property_depth import examples

REASON = [("centinela.reason", b"too_large"), ("centinela.detail", b"1040000 bytes > 65536")]


def test_a_message_that_fits_is_left_alone() -> None:
    assert fit_dead_letter(b"EST-01", b"{}", REASON, 10_000) == (b"EST-01", b"{}", REASON)


def test_an_oversized_message_is_truncated_with_its_size_digest_and_reason() -> None:
    value = b"A" * 1_040_000
    key, kept, headers = fit_dead_letter(b"EST-01", value, REASON, 1_000_000)
    named = dict(headers or [])
    assert key == b"EST-01"
    assert value.startswith(kept or b"") and len(kept or b"") > 900_000
    assert named["centinela.truncated"] == b"true"
    assert named["centinela.original.size"] == b"1040000"
    assert named["centinela.original.sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert named["centinela.reason"] == b"too_large"
    assert message_size(key, kept, headers) <= 1_000_000


def test_the_limit_is_the_smallest_known_and_never_absurdly_small() -> None:
    assert usable_limit(1_000_000, 200_000) == 200_000
    assert usable_limit(1_000_000, None) == 1_000_000
    assert usable_limit(10, None) == MIN_LIMIT


@pytest.mark.slow
@settings(max_examples=examples(200), deadline=None)
@given(
    key=st.none() | st.binary(max_size=20_000),
    value=st.binary(max_size=50_000),
    theirs=st.lists(st.tuples(st.text(max_size=40), st.binary(max_size=5_000)), max_size=8),
    limit=st.integers(MIN_LIMIT, 40_000),
)
def test_whatever_comes_in_fits_under_the_limit(
    key: bytes | None, value: bytes, theirs: list[tuple[str, bytes]], limit: int
) -> None:
    out_key, out_value, headers = fit_dead_letter(key, value, [*theirs, *REASON], limit)
    assert message_size(out_key, out_value, headers) <= limit
    assert value.startswith(out_value or b"")
    if out_value != value:
        assert dict(headers or [])["centinela.reason"] == b"too_large"
