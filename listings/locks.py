"""Locks of the listing services. They come first in the registry's lock order
(``ledger/locks.py``): listing -> purchase -> (registry locks: batch, holdings, escrow hold)
-> ledger head. Row locks are ``FOR NO KEY UPDATE``, as in ``ledger/locks.py``: a purchase
inserted for a listing takes ``FOR KEY SHARE`` on the listing's row (its foreign key), which
must not wait for the take that holds it."""

from __future__ import annotations

from .models import Listing, Purchase


def listing_lock(listing_id: int) -> Listing | None:
    """The listing's row, for a take or a transition: takes queue on it, so two takers never
    both get the last lots, and none commits across a withdrawal or the expiry."""
    return (
        Listing.objects.select_for_update(of=("self",), no_key=True).filter(pk=listing_id).first()
    )


def purchase_lock(purchase_id: int) -> Purchase | None:
    """A purchase's row, after its listing's: confirmed or defaulted once."""
    return (
        Purchase.objects.select_for_update(of=("self",), no_key=True).filter(pk=purchase_id).first()
    )
