from __future__ import annotations

from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "ledger"
    verbose_name = "Registry and ledger"

    def ready(self) -> None:
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured

        from .apis import schema  # noqa: F401  (registers the OpenAPI auth extensions)

        # Production refuses to start without its signing key, rather than at the first write.
        if settings.PRODUCTION and not settings.LEDGER_SIGNING_KEY_FILE.exists():
            raise ImproperlyConfigured(
                f"LEDGER_SIGNING_KEY_FILE {settings.LEDGER_SIGNING_KEY_FILE} does not exist"
            )
        if settings.PRODUCTION and not settings.LEDGER_ENTRY_KEY_FILE.exists():
            raise ImproperlyConfigured(
                f"LEDGER_ENTRY_KEY_FILE {settings.LEDGER_ENTRY_KEY_FILE} does not exist "
                "(create it with `manage.py ledger_entry_key`)"
            )
