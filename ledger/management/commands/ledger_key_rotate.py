"""``manage.py ledger_key_rotate``: start signing with a new key; old checkpoints still verify."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ledger.signing import rotate_signing_key


class Command(BaseCommand):
    help = "Generate a new ledger signing key; the old verifier key stays trusted."

    def handle(self, *args: Any, **options: Any) -> None:
        old, new = rotate_signing_key()
        self.stdout.write(f"retired: {old.to_string()}\nactive:  {new.to_string()}")
