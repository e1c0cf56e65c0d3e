"""Bid receipts: a C2SP signed note for each version of a bid, by the auction house's receipt
key (docs/auctions.md §3.5).

The receipt key is not the ledger's checkpoint key: web processes sign receipts, and the
checkpoint key lives only where checkpoints are signed. It is kept like the checkpoint key
(``ledger.signing.KeyFile``): a file named by ``AUCTION_RECEIPT_KEY_FILE``, generated in
development, required in production; every verifier key it has had listed in
``AUCTION_RECEIPT_VERIFIER_KEYS_FILE`` (published at ``GET /api/v1/auctions/receipts/
verifier-keys``); rotated by ``manage.py receipt_key_rotate``, old keys trusted for ever.
"""

from __future__ import annotations

from django.conf import settings

from ledger.core.note import Verifier, sign_note
from ledger.signing import KeyFile


def key_name() -> str:
    """The receipt key's name: the log's origin and ``/receipts``, never the checkpoint key's."""
    return f"{settings.LEDGER_ORIGIN}/receipts"


RECEIPT_KEY = KeyFile(
    what="receipt signing key",
    key_setting="AUCTION_RECEIPT_KEY_FILE",
    keys_setting="AUCTION_RECEIPT_VERIFIER_KEYS_FILE",
    name=key_name,
)


def receipt_sign(text: str) -> str:
    """The receipt note. Ed25519 is deterministic: the same facts and key give the same bytes."""
    return sign_note(text, RECEIPT_KEY.signer())


def receipt_verifiers(extra: list[str] | None = None) -> list[Verifier]:
    """Every key receipts have been signed with, the current one included (this process holds
    it: it signs receipts), plus ``extra``."""
    return RECEIPT_KEY.verifiers(extra, current=True)
