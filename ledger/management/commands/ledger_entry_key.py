"""``manage.py ledger_entry_key``: create the key that authenticates each entry.

A new ledger gets it before its first entry (``since`` 0). An existing ledger that predates
entry authentication gets one whose ``since`` is the ledger's size now, so that every entry
from here on must carry a MAC: run a full ``ledger_verify`` first, since the entries before are
vouched for only by the checkpoints, witnesses and auditors that already hold them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ledger.entry_auth import create_key, key_path
from ledger.models import LedgerHead


class Command(BaseCommand):
    help = "Create LEDGER_ENTRY_KEY_FILE (the entry MAC key); entries from now on carry a MAC."

    def handle(self, *args: Any, **options: Any) -> None:
        path = key_path()
        if path.exists():
            raise CommandError(f"{path} exists: an entry key is never replaced in place")
        head = LedgerHead.objects.filter(pk=1).first()
        since = head.size if head else 0
        create_key(path, since=since)
        self.stdout.write(f"entry key written to {path} (mode 0600); entries from {since} on\n")
