from __future__ import annotations

from django.apps import AppConfig


class AuctionsConfig(AppConfig):
    name = "auctions"
    verbose_name = "Sealed-bid auctions"

    def ready(self) -> None:
        # Here, not at the top: the models these modules import load once the registry is ready.
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured

        from ledger import entry_types

        from .core.replay import AUCTION_ENTRY_TYPES, AuctionState
        from .verify import compare_auction_tables

        # The ledger holds, replays and checks auction entries through this registration.
        entry_types.register(
            entry_types.EntryTypes(
                app="auctions",
                types=frozenset(AUCTION_ENTRY_TYPES),
                replay=AuctionState,
                replay_from_json=AuctionState.from_json,
                compare_tables=compare_auction_tables,
            )
        )

        # Production refuses to start without the key that keeps auction keys secret, rather
        # than at the first auction scheduled.
        if settings.PRODUCTION and not settings.AUCTION_KEK_FILE.exists():
            raise ImproperlyConfigured(
                f"AUCTION_KEK_FILE {settings.AUCTION_KEK_FILE} does not exist"
            )
        # Nor without the key web processes sign bid receipts with (auctions/receipts.py).
        if settings.PRODUCTION and not settings.AUCTION_RECEIPT_KEY_FILE.exists():
            raise ImproperlyConfigured(
                f"AUCTION_RECEIPT_KEY_FILE {settings.AUCTION_RECEIPT_KEY_FILE} does not exist "
                "(create it with `manage.py receipt_key_rotate`)"
            )
