"""The listing tables compared with what replaying the ledger built (called by
``ledger.verify`` after the registry's tables)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from bluecarbon_audit.listings import ListingState

from . import records
from .models import Listing, Purchase


def compare_listing_tables(
    state: ListingState,
    compare_rows: Callable[
        [str, dict[Any, dict[str, Any]], Generator[dict[str, Any], None, None]], None
    ],
    error: type[Exception],
) -> list[str]:
    def rows(
        model: Any, to_record: Callable[[Any], dict[str, Any]]
    ) -> Generator[dict[str, Any], None, None]:
        return (to_record(obj) for obj in model.objects.order_by("pk").iterator(chunk_size=2000))

    # The replay keeps each listing's id in its record (the terms name it); the table's id is
    # the key.
    listings = {k: {f: v for f, v in x.items() if f != "id"} for k, x in state.listings.items()}
    compare_rows("listing", listings, rows(Listing, records.listing_state))
    compare_rows("purchase", state.purchases, rows(Purchase, records.purchase_state))
    return []
