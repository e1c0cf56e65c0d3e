from __future__ import annotations

from django.apps import AppConfig


class ListingsConfig(AppConfig):
    name = "listings"
    verbose_name = "Listing sales"

    def ready(self) -> None:
        # Here, not at the top: the models these modules import load once the registry is ready.
        from bluecarbon_audit.listings import LISTING_ENTRY_TYPES, ListingState

        from ledger import entry_types

        from .verify import compare_listing_tables

        # The ledger holds, replays and checks listing entries through this registration.
        entry_types.register(
            entry_types.EntryTypes(
                app="listings",
                types=frozenset(LISTING_ENTRY_TYPES),
                replay=ListingState,
                replay_from_json=ListingState.from_json,
                compare_tables=compare_listing_tables,
            )
        )
