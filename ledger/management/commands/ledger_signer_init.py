"""``manage.py ledger_signer_init``: give the checkpoint signer its state again, explicitly.

The signer signs only trees that extend the last one it signed, which it records in a state
file beside its key (ledger/signer.py). When that file is lost, it must be told where to start,
by a checkpoint someone independent vouches for: the latest one an auditor kept, or (once
witnesses run) the latest one witnesses cosigned. This command checks that checkpoint against a
trusted key and against the entries in the database (they must hash to its root), writes the
state, and logs the step at WARNING so that it shows in the operator's logs. It never starts
from the database alone: without ``--checkpoint`` it accepts only an empty ledger."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger.signer import SignerRefused, signer_initialise, state_path

log = logging.getLogger("ledger.signer")


class Command(BaseCommand):
    help = "Initialise the checkpoint signer's state from a checkpoint note you trust."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--checkpoint",
            type=Path,
            help="a file holding the signed checkpoint note to start from (omit: empty ledger)",
        )
        parser.add_argument("--replace", action="store_true", help="replace an existing state file")

    def handle(self, *args: Any, **options: Any) -> None:
        path = state_path()
        if path.exists() and not options["replace"]:
            raise CommandError(f"{path} exists; the signer has its state (--replace to reset it)")
        note = options["checkpoint"].read_text() if options["checkpoint"] else None
        try:
            state = signer_initialise(path, note)
        except SignerRefused as exc:
            raise CommandError(str(exc)) from None
        log.warning(
            "checkpoint signer state initialised by an operator at %s: size %d, root %s",
            path,
            state.size,
            state.edge.root().hex(),
        )
        self.stdout.write(f"signer state at {path}: tree size {state.size}\n")
