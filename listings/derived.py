"""The listings' tables: which ``ledger_verify`` compares with the replay (listings/verify.py)."""

from __future__ import annotations

COMPARED = {
    "listings.Listing": "every listing's terms, escrow hold, state and unsold lots "
    "(listing.create, listing.take, listing.purchase_default, listing.withdraw, listing.expire)",
    "listings.Purchase": "every take and what became of it (listing.take, "
    "listing.purchase_confirm, listing.purchase_default)",
}
CHECKED: dict[str, str] = {}
NOT_DERIVED: dict[str, str] = {}
