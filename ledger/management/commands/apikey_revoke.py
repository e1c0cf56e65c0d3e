"""``manage.py apikey_revoke <prefix>``: the key answers 401 from now on. Revoking twice is
harmless; the first revocation time is kept."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ledger import services
from ledger.exceptions import DomainError


class Command(BaseCommand):
    help = "Revoke an API key by its public prefix (the 8 hex digits after bck_)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            key = services.apikey_revoke(prefix=options["prefix"])
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"revoked {key.prefix} ({key.organization.handle}, {key.name}) "
            f"at {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC"
        )
