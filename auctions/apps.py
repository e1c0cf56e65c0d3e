from __future__ import annotations

from django.apps import AppConfig


class AuctionsConfig(AppConfig):
    name = "auctions"
    verbose_name = "Sealed-bid auctions"

    def ready(self) -> None:
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured

        # Production refuses to start without the key that keeps auction keys secret, rather
        # than at the first auction scheduled.
        if settings.PRODUCTION and not settings.AUCTION_KEK_FILE.exists():
            raise ImproperlyConfigured(
                f"AUCTION_KEK_FILE {settings.AUCTION_KEK_FILE} does not exist"
            )
