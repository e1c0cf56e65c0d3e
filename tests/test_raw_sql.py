"""Raw SQL tied to the models (bluecarbon/rows.py): every raw INSERT of the app covers every
column its model requires, the check can tell when one does not, no INSERT is written by hand
outside the registered ones, and rows built from raw SQL are instances as Django builds them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import auctions.services  # noqa: F401 (registers its statements)
import ledger.locks  # noqa: F401
from auctions.models import Bid
from bluecarbon.rows import RawInsert, adopt, loaded
from ledger.models import Holding, Organization

ROOT = Path(__file__).resolve().parent.parent
# Raw INSERTs allowed outside RawInsert, each with its reason.
WRITTEN_BY_HAND = {
    # An insider's attacks on the database, written as an attacker would write them.
    "ledger/drill_attacks.py",
    # The ledger append (one statement with the head update, or COPY): the entries table's
    # columns are the ledger format's own (docs/ledger-format.md), checked by ledger_verify.
    "ledger/services/append.py",
}


def test_every_raw_insert_gives_every_column_its_model_requires():
    assert len(RawInsert.registry) >= 3
    for insert in RawInsert.registry:
        assert insert.required_missing() == [], insert.sql()


def test_the_check_sees_a_required_column_left_out():
    partial = RawInsert(Bid, ["auction", "bidder", "account", "version", "ciphertext"])
    try:
        assert set(partial.required_missing()) == {"commitment", "entry_seq", "status"}
    finally:
        RawInsert.registry.remove(partial)
    # A column with a database default may be left out (Bid.reason has one).
    assert "reason" not in partial.required_missing()


def test_no_insert_is_written_by_hand_outside_the_registered_ones():
    found = []
    for app in ("ledger", "auctions", "portal", "bluecarbon"):
        for path in (ROOT / app).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if "/migrations/" in rel or rel == "bluecarbon/rows.py" or rel in WRITTEN_BY_HAND:
                continue
            if re.search(r"INSERT\s+INTO", path.read_text(), re.IGNORECASE):
                found.append(rel)
    assert found == []


@pytest.mark.django_db
def test_a_loaded_row_is_an_instance_as_django_builds_it(world):
    org = (
        Organization.objects.get(pk=world.dev.organization_id)
        if hasattr(world.dev, "organization_id")
        else Organization.objects.first()
    )
    with CaptureQueriesContext(connection) as queries:
        h = loaded(Holding, pk=1, account_id=7, batch_id=3, tradable=5, escrowed=0)
        key_org = loaded(Organization, pk=org.pk, handle=org.handle)
    assert not queries.captured_queries
    assert not h._state.adding and h._state.db == connection.alias
    assert (h.pk, h.account_id, h.tradable) == (1, 7, 5)
    # A field not given is deferred: read from the database when asked for, never a default.
    assert "name" in key_org.get_deferred_fields()
    assert key_org.name == org.name
    # A related object given as an instance is cached, as select_related would.
    bid = loaded(Bid, pk=1, bidder=org, version=1)
    with CaptureQueriesContext(connection) as queries:
        assert bid.bidder is org
    assert not queries.captured_queries
    with pytest.raises(Exception, match="has no field named"):
        loaded(Holding, pk=1, nonsense=2)


@pytest.mark.django_db
def test_adopt_makes_an_unsaved_instance_the_row_that_exists(world):
    made = Organization.objects.first()
    obj = Organization()
    adopt(obj, made)
    assert not obj._state.adding and obj.pk == made.pk and obj.handle == made.handle


@pytest.mark.django_db
def test_every_table_of_the_schema_can_be_introspected():
    """Django reads a SQLite table's columns from its CREATE statement, split on ", ": a CHECK
    constraint whose SQL holds ", " (a function of two arguments, as Left's SUBSTR) breaks
    every later look at that table (inspectdb, a test reading every table). The escrow hold's
    owner check is written with ledger.models.Prefix for that reason."""
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            assert connection.introspection.get_table_description(cursor, table), table
