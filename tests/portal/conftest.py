from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Rate-limit counters live in the default cache: each test starts with none."""
    from django.core.cache import caches

    caches["default"].clear()
