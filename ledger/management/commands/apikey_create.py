"""``manage.py apikey_create --org <handle> --scope read --scope transfer``: prints the key once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ledger import services
from ledger.exceptions import LedgerError
from ledger.models import ApiKey, Organization


class Command(BaseCommand):
    help = "Create an API key for an organization. The key is printed once and never stored."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", required=True, help="organization handle")
        parser.add_argument("--name", default="API key")
        parser.add_argument(
            "--scope",
            action="append",
            choices=ApiKey.Scope.values,
            required=True,
            help="repeat for several scopes",
        )
        parser.add_argument("--expires-days", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        org = Organization.objects.filter(handle=options["org"]).first()
        if org is None:
            raise CommandError(f"no organization {options['org']!r}")
        expires = (
            timezone.now() + dt.timedelta(days=options["expires_days"])
            if options["expires_days"]
            else None
        )
        try:
            key, secret = services.apikey_create(
                organization=org.pk,
                name=options["name"],
                scopes=options["scope"],
                expires_at=expires,
            )
        except LedgerError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(
            f"key {key.prefix} for {org.handle}, scopes {', '.join(key.scopes)}; "
            "store it now, it is not shown again:"
        )
        self.stdout.write(secret)
