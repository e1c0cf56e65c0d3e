"""``manage.py ledger_tamper_drill``: every attack of docs/threat-model.md made on a scratch copy
of this database, and which mechanism detects it (``ledger/drill.py``)."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ledger import drill, scratch


class Command(BaseCommand):
    help = (
        "Copy this PostgreSQL database into scratch databases (created and dropped here; the "
        "live one is only read), make each insider attack of docs/threat-model.md on a fresh "
        "copy, and print which mechanism detects it and where. Exits 1 when an attack the "
        "threat model claims is detected was not, or when the untouched copy sets anything off."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        # -v 2: what each attack changed and what every mechanism said.
        parser.add_argument(
            "--no-witnesses",
            action="store_true",
            help="start no witness processes (the witnesses' column is then not tried)",
        )
        parser.add_argument(
            "--attack",
            action="append",
            default=[],
            metavar="ID",
            help="only this attack (may be repeated); one of: "
            + ", ".join(a.id for a in drill.attacks()),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(message: str) -> None:
            if not options["json"]:
                self.stderr.write(message)

        try:
            report = drill.drill_run(
                with_witnesses=not options["no_witnesses"],
                only=options["attack"] or None,
                progress=progress,
            )
        except (drill.DrillError, scratch.ScratchError) as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        else:
            self.stdout.write(drill.report_text(report, details=options["verbosity"] >= 2))
        if not report.ok:
            sys.exit(1)
