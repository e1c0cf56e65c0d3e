"""What a bid of every format checks first, in the same words: that the auction takes bids now,
and that the bidder, its row locked (``locks.bidder_lock``), is not the seller. The format's own
checks follow (sealed: ``services/bidding.py``; ``english.py``; ``clock.py``)."""

from __future__ import annotations

import datetime as dt

from ledger.core.entry import format_time
from ledger.models import Organization

from . import locks
from .exceptions import AuctionErrorCode as Code
from .exceptions import Conflict, Unprocessable
from .models import Auction

State = Auction.State


def refuse_unless_taking_bids(a: Auction, now: dt.datetime, ends_at: dt.datetime) -> None:
    """Open, and ``now`` before ``ends_at`` (the closing time, or an English auction's moving
    end)."""
    if a.state in (State.DRAFT, State.SCHEDULED):
        raise Conflict(f"auction {a.pk} is not open for bids yet", code=Code.NOT_OPEN)
    if a.state != State.OPEN or now >= ends_at:
        raise Conflict(
            f"auction {a.pk} closed for bids at {format_time(ends_at)}",
            code=Code.CLOSED,
            detail={"closes_at": format_time(ends_at)},
        )


def bidder_of(a: Auction, organization_id: int) -> Organization:
    """The bidding organization's row, locked; never the auction's seller."""
    org = locks.bidder_lock(organization_id)
    if org.pk == a.seller_id:
        raise Unprocessable("a seller cannot bid in its own auction", code=Code.OWN_AUCTION)
    return org
