"""Listing errors: the project's domain error classes (one handler, one JSON shape), with codes
of the listings' own (docs/listings.md §errors)."""

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
    "CommonCode",
    "Conflict",
    "DomainError",
    "InvalidInput",
    "ListingErrorCode",
    "NotFound",
    "PermissionDenied",
    "Unprocessable",
]


class ListingErrorCode(Codes):
    INVALID_TERMS = "listing_invalid_terms", 400
    INVALID_TIME = "listing_invalid_time", 400
    WRONG_STATE = "listing_wrong_state", 409
    NOT_OPEN = "listing_not_open", 409
    CLOSED = "listing_closed", 409
    INSUFFICIENT_LOTS = "listing_insufficient_lots", 409
    BUYER_CAP = "listing_buyer_cap", 409
    BELOW_MINIMUM = "listing_below_minimum", 422
    OWN_LISTING = "own_listing", 422
    PURCHASE_RESOLVED = "purchase_resolved", 409
