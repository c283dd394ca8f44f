"""How hard the property tests search: two Hypothesis profiles and each test's example count.

- ``fast``, loaded by default (``make test-fast``, a bare ``pytest``): a fifth of each test's
  examples (at least 10), so ``tests/unit`` runs in well under a minute.
- ``fuzz`` (``pytest --hypothesis-profile=fuzz``: ``make test``, ``make test-unit``, so CI): every
  test's full count, the depth the suite had before the profiles.

Counts are written for the deep run, ``@settings(max_examples=examples(300))``; a test that names
none gets the profile's own (Hypothesis's default 100 under ``fuzz``, 20 under ``fast``).
"""

from __future__ import annotations

from hypothesis import settings

FAST = "fast"
FUZZ = "fuzz"
_DEEP = 100  # Hypothesis's default max_examples: the fuzz profile, and the scale of examples()
_FAST_SHARE = 5
_FEWEST = 10

# Both build on the profile Hypothesis chose at import (its ``ci`` one on a CI runner: derandomized,
# no example database), so CI searches exactly as it did before the profiles.
_CHOSEN = settings.default
settings.register_profile(FUZZ, parent=_CHOSEN, max_examples=_DEEP)
settings.register_profile(FAST, parent=_CHOSEN, max_examples=_DEEP // _FAST_SHARE)


def examples(deep: int) -> int:
    """``deep`` under the fuzz profile; under the fast one a fifth of it, at least 10 (or ``deep``)."""
    scaled = deep * settings.default.max_examples // _DEEP
    return min(deep, max(_FEWEST, scaled))
