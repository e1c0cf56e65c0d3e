"""``manage.py ledger_checkpoint``: sign a checkpoint now (on demand)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ledger.selectors import checkpoint_latest
from ledger.services import ledger_checkpoint_issue
from ledger.signer import SignerRefused


class Command(BaseCommand):
    help = "Extend the Merkle tree over all committed entries and sign a checkpoint."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            checkpoint = ledger_checkpoint_issue() or checkpoint_latest()
        except SignerRefused as exc:
            raise CommandError(f"the signer refused: {exc}") from None
        if checkpoint is None:
            self.stdout.write("the ledger is empty: nothing to checkpoint")
            return
        self.stdout.write(checkpoint.note, ending="")
