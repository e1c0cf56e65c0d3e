"""The portal's tables: none is ledger state (see ledger/derived.py)."""

from __future__ import annotations

COMPARED: dict[str, str] = {}
CHECKED: dict[str, str] = {}
NOT_DERIVED = {
    "portal.SignupRequest": "an organization's request to join, before an operator registers it "
    "(the registration is the ledger entry)",
    "portal.VerificationRun": "operational: the history and progress of verification runs",
    "portal.RecoveryCodeDevice": "sign-in: a user's set of two-factor recovery codes",
    "portal.RecoveryCode": "sign-in: one recovery code, stored as its SHA-256 only",
}
