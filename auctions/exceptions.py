"""Auction errors: the project's domain error classes (one handler, one JSON shape), with codes
of the auctions' own."""

from __future__ import annotations

from bluecarbon.errors import (
    Codes,
    CommonCode,
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unprocessable,
)

__all__ = [
    "AuctionErrorCode",
    "CommonCode",
    "Conflict",
    "DomainError",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "Unprocessable",
]


class AuctionErrorCode(Codes):
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
