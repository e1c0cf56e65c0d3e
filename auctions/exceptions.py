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
    INVALID_RULES = "invalid_rules", 400
    INVALID_TIME = "invalid_time", 400, 409
    WRONG_STATE = "auction_wrong_state", 409
    NOT_OPEN = "auction_not_open", 409
    CLOSED = "auction_closed", 409
    NOT_APPROVED = "bidder_not_approved", 403, 422
    DEPOSIT_MISSING = "deposit_insufficient", 409
    TOO_MANY_BIDS = "too_many_bids", 409
    BID_WITHDRAWN = "bid_withdrawn", 409
    MALFORMED_CIPHERTEXT = "malformed_ciphertext", 400
    DUPLICATE_CIPHERTEXT = "duplicate_ciphertext", 409
    OWN_AUCTION = "own_auction", 422
    AWARD_RESOLVED = "award_resolved", 409
    INVALID_KEY = "invalid_key", 400
    KEY_REGISTERED = "key_registered", 409
    KEY_MISMATCH = "key_mismatch", 422
    NOT_CLOSED = "auction_not_closed", 409
    TRUSTEE_KEYS_EXHAUSTED = "trustee_keys_exhausted", 409
    APPLICATION_STATE = "application_wrong_state", 409
    BIDS_STANDING = "bids_standing", 409
    DEPOSIT_NOT_HELD = "deposit_not_held", 409
    # English auctions (auctions/english.py).
    BID_TOO_LOW = "bid_too_low", 422
    PRICE_OFF_TICK = "price_off_tick", 422
    ALREADY_LEADING = "already_leading", 409
    WRONG_FORMAT = "wrong_format", 409
    PADDLE_ACCOUNT = "paddle_account_fixed", 409
    # Clock auctions (auctions/clock.py).
    ROUND_BID_REFUSED = "round_bid_refused", 422
