"""Signed verification reports: each verification the auditor pages run ends in a C2SP signed
note saying what was verified, up to which signed checkpoint, and with what result, signed by
the verification report key (docs/audit.md §"Signed verification reports").

What a report proves, and what not: that the verifier run by this registry's workers, holding
the report key, said so at that time about the log up to that checkpoint (size and root, which
anyone can match against the log and its witnesses). It is the operator's statement, kept and
signed so it can be quoted and compared later; it is no substitute for an auditor's own run of
``bluecarbon-audit verify`` on the export bundle it is published beside.

The key is kept like the receipt key (``ledger.signing.KeyFile``): a file named by
``VERIFICATION_REPORT_KEY_FILE``, generated in development, created in production with
``manage.py report_key_rotate`` on the hosts whose workers run verifications (and rotated with
it); every verifier key it has had listed in ``VERIFICATION_REPORT_VERIFIER_KEYS_FILE``.
"""

from __future__ import annotations

import base64
from datetime import datetime

from django.conf import settings

from ledger.core.note import Verifier, sign_note
from ledger.signing import KeyFile

FORMAT = "bluecarbon verification report v1"


def key_name() -> str:
    return f"{settings.LEDGER_ORIGIN}/verification-reports"


REPORT_KEY = KeyFile(
    what="verification report key",
    key_setting="VERIFICATION_REPORT_KEY_FILE",
    keys_setting="VERIFICATION_REPORT_VERIFIER_KEYS_FILE",
    name=key_name,
)


def _line(text: str) -> str:
    """One line of note text: no newline, nothing a note cannot carry."""
    return " ".join(text.split()) or "-"


def report_text(
    *,
    run: int,
    started: datetime,
    finished: datetime,
    verified: bool,
    entries: int,
    checkpoint: tuple[int, bytes] | None,
    failure: str = "",
    failed_seq: int | None = None,
) -> str:
    """The report's note text (docs/audit.md): one fact per line."""
    lines = [
        FORMAT,
        f"origin {settings.LEDGER_ORIGIN}",
        f"run {run}",
        f"started {started.isoformat()}",
        f"finished {finished.isoformat()}",
        f"result {'verified' if verified else 'failed'}",
        f"entries {entries}",
        (
            f"checkpoint {checkpoint[0]} {base64.b64encode(checkpoint[1]).decode()}"
            if checkpoint
            else "checkpoint none"
        ),
    ]
    if not verified:
        at = "-" if failed_seq is None else str(failed_seq)
        lines.append(f"failure {at} {_line(failure)}")
    return "\n".join(lines) + "\n"


def report_sign(text: str) -> str:
    return sign_note(text, REPORT_KEY.signer())


def report_verifiers() -> list[Verifier]:
    """Every key reports have been signed with: the keys file lists each before it first signs
    (the web, which publishes them, does not hold the key)."""
    return REPORT_KEY.verifiers(None)
