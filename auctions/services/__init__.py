"""Every write of the auction house, one module per aggregate: bidders (approval, deposits),
lifecycle (create, schedule, open, cancel), bidding (sealed bids and their receipts), closing
(close, reveal, opening the bids, clearing; or failing) and settlement (settle, delivery versus
payment, notification); below them common.py (the lock for a transition, the append, the end of
an auction that does not settle) and formats.py (each format's own steps: ``sealed.py``,
``english.py``, ``clock.py``). Callers use the package (``services.auction_close``).

Each function validates, locks (``auctions/locks.py``, then the registry's order), changes the
auction tables and appends its ledger entries, all in one transaction. State transitions are
compare-and-set under the auction's row lock, so a step run twice (a task delivered twice, a
worker restarted) does its work once and then reports that there was nothing to do.

Amounts are integers: kgCO2e, whole lots, minor currency units (prices per tonne).
"""

from __future__ import annotations

from ..sealed import NotReady
from .bidders import bidder_approve, bidder_suspend, deposit_record
from .bidding import bid_amend, bid_submit, bid_withdraw, receipt_note, receipt_note_of
from .closing import (
    auction_bids_open,
    auction_clear,
    auction_close,
    auction_fail,
    auction_release_overdue,
    keys_ready,
    unopened_bid_ids,
)
from .lifecycle import auction_cancel, auction_create, auction_open, auction_schedule
from .settlement import auction_notify, auction_settle, award_confirm_payment, award_default

__all__ = [
    "NotReady",
    "auction_bids_open",
    "auction_cancel",
    "auction_clear",
    "auction_close",
    "auction_create",
    "auction_fail",
    "auction_notify",
    "auction_open",
    "auction_release_overdue",
    "auction_schedule",
    "auction_settle",
    "award_confirm_payment",
    "award_default",
    "bid_amend",
    "bid_submit",
    "bid_withdraw",
    "bidder_approve",
    "bidder_suspend",
    "deposit_record",
    "keys_ready",
    "receipt_note",
    "receipt_note_of",
    "unopened_bid_ids",
]
