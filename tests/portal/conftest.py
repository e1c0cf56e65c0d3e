from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import chromium, served


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Rate-limit counters live in the default cache: each test starts with none."""
    from django.core.cache import caches

    caches["default"].clear()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module (the browser tests')."""
    with chromium() as b:
        yield b


@pytest.fixture
def site(committed_db: None) -> Iterator[str]:
    """The portal served on a free port (``tests.browser.served``)."""
    with served() as url:
        yield url
