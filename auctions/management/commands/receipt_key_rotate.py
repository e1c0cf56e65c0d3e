"""``manage.py receipt_key_rotate``: start signing bid receipts with a new key; receipts signed
before keep verifying. Where there is no receipt key yet, it creates the first one."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from auctions.receipts import RECEIPT_KEY


class Command(BaseCommand):
    help = (
        "Generate a new bid receipt key (AUCTION_RECEIPT_KEY_FILE), or the first one; old "
        "verifier keys stay trusted."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not RECEIPT_KEY.path.exists():
            try:
                new = RECEIPT_KEY.create()
            except FileExistsError:
                pass  # made meanwhile (a development process generated one): rotate that
            else:
                self.stdout.write(f"created: {RECEIPT_KEY.path}\nactive:  {new.to_string()}")
                return
        old, new = RECEIPT_KEY.rotate()
        self.stdout.write(f"retired: {old.to_string()}\nactive:  {new.to_string()}")
