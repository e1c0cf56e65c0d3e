from __future__ import annotations

import pytest

from ledger.models import LedgerEntry
from tests.factories import World


@pytest.fixture
def world(db: None) -> World:
    return World()


@pytest.fixture
def ledger_length():
    """Call it to get the number of ledger entries now."""
    return lambda: LedgerEntry.objects.count()
