"""Row locks of the auction services. They come first in the registry's lock order
(``ledger/locks.py``): auction -> bidder (its organization row) -> bid -> (registry locks)
-> ledger head.

Bids lock their auction shared and closing locks it exclusively: a bid whose transaction holds
the shared lock commits before the close can start, and one that comes after the close sees the
auction closed. So every accepted bid is counted, and no bid is accepted and then ignored.
"""

from __future__ import annotations

from django.db import connection

from ledger.models import Organization

from .models import Auction, Bid


def auction_lock(auction_id: int) -> Auction | None:
    # Exclusive: state transitions (compare-and-set under this lock), closing.
    return Auction.objects.select_for_update(of=("self",)).filter(pk=auction_id).first()


def auction_share_lock(auction_id: int) -> Auction | None:
    """Shared: bids and deposits, which must not commit across a transition, but need not
    wait for each other."""
    if connection.vendor == "postgresql":
        rows = list(
            Auction.objects.raw(
                "SELECT * FROM auctions_auction WHERE id = %s FOR SHARE", [auction_id]
            )
        )
        return rows[0] if rows else None
    # SQLite: the immediate transaction already holds the database's write lock.
    return Auction.objects.filter(pk=auction_id).first()


def bidder_lock(organization_id: int) -> None:
    """One bidder's submissions to any auction, one at a time (bounded number of bids)."""
    Organization.objects.select_for_update().filter(pk=organization_id).first()


def bid_lock(bid_id: int) -> Bid | None:
    return Bid.objects.select_for_update(of=("self",)).filter(pk=bid_id).first()
