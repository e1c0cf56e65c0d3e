"""``manage.py apikey_create --org <handle> --name <n> --scope read --scope transfer
[--expires-days N]``: makes an API key and prints it once.

The key goes to stdout and nowhere else (not to stderr, not to the log), so it can be piped
straight into a secret store; what was made is described on stderr without it. Only the key's
SHA-256 is stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ledger import services
from ledger.exceptions import DomainError
from ledger.models import ApiKey, Organization


class Command(BaseCommand):
    help = "Create an API key for an organization. The key is printed once and never stored."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", required=True, help="organization handle")
        parser.add_argument("--name", default="API key", help="what the key is for")
        parser.add_argument(
            "--scope",
            action="append",
            choices=ApiKey.Scope.values,
            required=True,
            help="repeat for several scopes",
        )
        parser.add_argument(
            "--expires-days", type=int, default=None, help="expire after N days (default never)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        org = Organization.objects.filter(handle=options["org"]).first()
        if org is None:
            raise CommandError(f"no organization {options['org']!r}")
        days = options["expires_days"]
        if days is not None and not 1 <= days <= 36_500:
            raise CommandError("--expires-days must be between 1 and 36500")
        expires = timezone.now() + dt.timedelta(days=days) if days is not None else None
        try:
            key, secret = services.apikey_create(
                organization=org.pk,
                name=options["name"],
                scopes=options["scope"],
                expires_at=expires,
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        until = f", expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else ""
        self.stderr.write(
            f"key {key.prefix} for {org.handle} ({key.name}), scopes {', '.join(key.scopes)}"
            f"{until}; store it now, it is not shown again:"
        )
        self.stdout.write(secret)
