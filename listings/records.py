"""How listing rows are written in ledger entries, and how the verifier reads them back: one
definition per table, shared by the services and ``ledger_verify``."""

from __future__ import annotations

from typing import Any

from ledger.core.entry import format_time

from .models import Listing, Purchase


def listing_terms(x: Listing) -> dict[str, Any]:
    """The terms as recorded by listing.create (``bluecarbon_audit.listings.TERMS``)."""
    return {
        "id": x.pk,
        "hold": x.hold_id,
        "seller": x.seller_id,
        "account": x.account_id,
        "batch": x.batch_id,
        "lots": x.lots,
        "lot_kg": x.lot_kg,
        "currency": x.currency,
        "price": x.price,
        "opens_at": format_time(x.opens_at),
        "closes_at": format_time(x.closes_at),
        "max_lots_per_buyer": x.max_lots_per_buyer,
        "min_lots": x.min_lots,
    }


def listing_state(x: Listing) -> dict[str, Any]:
    """The row as the replay builds it: the terms, the state, what remains, the entries."""
    return {
        **listing_terms(x),
        "state": x.state,
        "remaining_lots": x.remaining_lots,
        "created_seq": x.created_seq,
        "state_seq": x.state_seq,
    }


def purchase_state(p: Purchase) -> dict[str, Any]:
    return {
        "id": p.pk,
        "listing": p.listing_id,
        "buyer": p.buyer_id,
        "account": p.account_id,
        "lots": p.lots,
        "quantity": p.quantity,
        "amount_due": p.amount_due,
        "state": p.state,
        "entry_seq": p.entry_seq,
        "resolved_seq": p.resolved_seq,
    }
