"""Locks of the auction services. They come first in the registry's lock order
(``ledger/locks.py``): auction -> bidder (its organization row) -> bid -> (registry locks)
-> ledger head.

An auction has two locks:

* its **bid gate**: bids and deposits take it shared, closing and cancelling exclusively. A
  bid whose transaction holds it commits before the close (or a cancel) can start, and one
  that comes after sees the auction closed: every accepted bid is counted, and no bid is
  accepted and then ignored. On PostgreSQL it is a transaction-scoped advisory lock, not a row
  lock: sixteen bidders share it without writing the auction's row (a shared row lock held by
  several transactions is a MultiXact written to the row for each new locker).
* its **row**, locked for update by every state transition (compare-and-set).

The gate comes before the row. Row locks are ``FOR NO KEY UPDATE``, as in ``ledger/locks.py``:
a bid or a deposit inserted for an auction takes ``FOR KEY SHARE`` on its row (the foreign
key), which must not wait for a transition holding it. (Scheduling sets the auction's hold, a
unique column, which takes the row ``FOR UPDATE`` after all; it does so under the ledger head,
which a deposit, the one row that can point at a draft auction, is inserted under too.)
"""

from __future__ import annotations

import datetime as dt
import json

from django.db import connection

from bluecarbon.rows import loaded
from ledger.models import Organization

from .models import Auction, Bid

# The advisory lock space of bid gates: (this class id, the auction's id).
_GATE = 0x42434147  # "BCAG"


def _gate(auction_id: int, exclusive: bool) -> None:
    if connection.vendor != "postgresql":
        return  # SQLite: the immediate transaction already holds the database's write lock
    if not 0 < auction_id < 2**31:
        return  # no such auction; the lookup that follows says so
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {fn}(%s, %s)", [_GATE, auction_id])


def auction_lock(auction_id: int, *, close_gate: bool = False) -> Auction | None:
    """The auction's row, for a state transition. ``close_gate``: first wait for every bid in
    flight and keep new ones out (closing, cancelling: transitions out of "open")."""
    if close_gate:
        _gate(auction_id, exclusive=True)
    return (
        Auction.objects.select_for_update(of=("self",), no_key=True).filter(pk=auction_id).first()
    )


def auction_share_lock(auction_id: int) -> Auction | None:
    """The bid gate, shared (bids and deposits: they must not commit across a transition out
    of "open", but need not wait for each other), and what a bid needs of the auction: its
    state, times, seller and deposit rule (raw SQL: on every bid's path)."""
    # Two statements, not one: the row must be read by a statement that starts after the
    # gate is held, so it sees a close that committed while this bid waited at the gate (a
    # statement's snapshot is taken when it starts, before any lock it then waits for).
    _gate(auction_id, exclusive=False)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, state, opens_at, closes_at, seller_id, deposit_required, currency, format, "
            "sealing, trustees FROM auctions_auction WHERE id = %s",
            [auction_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    pk, state, opens_at, closes_at, seller, deposit, currency, fmt, sealing, trustees = row
    if isinstance(trustees, str):  # SQLite's JSON comes back as text, PostgreSQL's parsed
        trustees = json.loads(trustees)
    if connection.vendor != "postgresql":
        # SQLite's backend hands raw SQL datetimes back as text or naive values.
        opens_at, closes_at = (_aware(v) for v in (opens_at, closes_at))
    return loaded(
        Auction,
        pk=pk,
        state=state,
        opens_at=opens_at,
        closes_at=closes_at,
        seller_id=seller,
        deposit_required=deposit,
        currency=currency,
        format=fmt,
        sealing=sealing,  # every sealed bid's check reads it (and the trustees' count)
        trustees=trustees,
    )


def _aware(value: object) -> dt.datetime:
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def bidder_lock(organization_id: int) -> Organization:
    """The bidder's organization row, locked: its bid actions and changes of its approval
    serialize on it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, handle FROM ledger_organization WHERE id = %s" + _for_update(),
            [organization_id],
        )
        pk, handle = cursor.fetchone()
    return Organization(pk=pk, handle=handle)


def _for_update() -> str:
    return " FOR NO KEY UPDATE" if connection.features.has_select_for_update else ""


def bid_lock(bid_id: int) -> Bid | None:
    return Bid.objects.select_for_update(of=("self",), no_key=True).filter(pk=bid_id).first()
