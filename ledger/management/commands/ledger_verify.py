"""``manage.py ledger_verify``: prove the ledger, its checkpoints and the live tables agree."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from bluecarbon_audit.policy import Policy, PolicyError
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ledger.core.note import NoteError, Verifier
from ledger.signing import trusted_verifiers
from ledger.verify import VerificationError, verify_ledger


class Command(BaseCommand):
    help = (
        "Re-hash every ledger entry, check the chain, the Merkle root and signature of every "
        "checkpoint, replay every entry and compare with the live tables. Exits 1 on failure, "
        "naming the first bad entry."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--since-checkpoint",
            action="store_true",
            help="verify only what is new since the last successful run (uses its saved state "
            "and a consistency proof)",
        )
        parser.add_argument(
            "--state-file",
            type=Path,
            default=settings.VAR_DIR / "ledger-verify-state.json",
            help="where a successful run records what it verified (default: %(default)s)",
        )
        parser.add_argument(
            "--verifier-key",
            action="append",
            default=[],
            help="an extra trusted verifier key (C2SP vkey); may be repeated",
        )
        parser.add_argument(
            "--only-key",
            action="store_true",
            help="trust only the --verifier-key keys, not the configured keys file",
        )
        parser.add_argument(
            "--witness-policy",
            type=Path,
            help="a C2SP tlog-policy file of the witnesses you trust (default: the log's own, "
            "LEDGER_WITNESS_POLICY_FILE); pin it out of band",
        )
        parser.add_argument(
            "--require-witnesses",
            action="store_true",
            help="fail unless the latest checkpoint is cosigned by the policy's quorum",
        )
        parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            verifiers = (trusted_verifiers([]) if not options["only_key"] else []) + _parse_keys(
                options["verifier_key"]
            )
        except NoteError as exc:
            raise CommandError(f"bad verifier key: {exc}") from None
        try:
            policy = (
                Policy.parse(options["witness_policy"].read_text())
                if options["witness_policy"]
                else None
            )
        except (OSError, PolicyError) as exc:
            raise CommandError(f"witness policy: {exc}") from None
        bar = tqdm(
            unit=" entries",
            disable=True if options["no_progress"] else None,  # None: only on a terminal
            file=sys.stderr,
            mininterval=0.5,
        )

        def progress(n: int) -> None:
            bar.update(n)

        started = time.monotonic()
        try:
            report = verify_ledger(
                verifiers=verifiers,
                state_file=options["state_file"],
                since_checkpoint=options["since_checkpoint"],
                progress=progress,
                witness_policy=policy,
                require_witnesses=options["require_witnesses"],
                on_total=lambda total: setattr(bar, "total", total),
            )
        except VerificationError as exc:
            bar.close()
            self.stderr.write(self.style.ERROR(f"FAILED: {exc}"))
            sys.exit(1)
        bar.close()
        elapsed = time.monotonic() - started
        rate = report.entries / elapsed if elapsed > 0 else 0
        scope = f"entries {report.first_seq}..{report.first_seq + report.entries - 1}"
        self.stdout.write(
            self.style.SUCCESS(
                f"OK: {report.entries} entries ({scope}), {report.checkpoints} checkpoints, "
                f"{report.records} records verified in {elapsed:.2f}s ({rate:,.0f} entries/s)"
            )
        )
        if report.latest_checkpoint is not None:
            self.stdout.write(
                f"latest signed checkpoint: size {report.latest_checkpoint}; "
                f"{report.uncovered} newer entries not yet checkpointed"
            )
        if report.witness_quorum is not None:
            latest = {True: "meets", False: "does NOT meet", None: "-"}[report.latest_witnessed]
            self.stdout.write(
                f"witnesses: {report.checkpoints_witnessed} of {report.checkpoints} checkpoints "
                f"meet the quorum ({report.witness_quorum}); the latest {latest} it"
            )
        for note in report.notes:
            self.stdout.write(f"note: {note}")


def _parse_keys(lines: list[str]) -> list[Any]:
    return [Verifier.from_string(line) for line in lines]
