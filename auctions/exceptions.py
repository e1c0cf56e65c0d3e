"""Auction errors: the ledger's error classes (one handler, one JSON shape), codes of our own."""

from __future__ import annotations

from enum import StrEnum

from ledger.exceptions import (
    Conflict,
    InvalidInput,
    LedgerError,
    NotFound,
    PermissionDenied,
    Unprocessable,
)

__all__ = [
    "AuctionErrorCode",
    "Conflict",
    "InvalidInput",
    "LedgerError",
    "NotFound",
    "PermissionDenied",
    "Unprocessable",
]


class AuctionErrorCode(StrEnum):
    INVALID_RULES = "invalid_rules"
    INVALID_PRICE = "invalid_price"
    INVALID_TIME = "invalid_time"
    WRONG_STATE = "auction_wrong_state"
    NOT_OPEN = "auction_not_open"
    CLOSED = "auction_closed"
    NOT_APPROVED = "bidder_not_approved"
    DEPOSIT_MISSING = "deposit_insufficient"
    TOO_MANY_BIDS = "too_many_bids"
    NO_BID = "bid_not_found"
    BID_WITHDRAWN = "bid_withdrawn"
    MALFORMED_CIPHERTEXT = "malformed_ciphertext"
    DUPLICATE_CIPHERTEXT = "duplicate_ciphertext"
    OWN_AUCTION = "own_auction"
    AWARD_RESOLVED = "award_resolved"
