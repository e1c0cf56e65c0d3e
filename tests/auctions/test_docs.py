"""docs/auctions.md is a specification other clients are written from: its sealing snippet
makes bids the worker opens, and it lists every error code and entry type we emit."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from django.conf import settings

from auctions.core import sealing
from auctions.core.replay import AUCTION_ENTRY_TYPES
from auctions.exceptions import AuctionErrorCode

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDE = (DOCS / "auctions.md").read_text()


def _snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE, re.S)
    (seal,) = [b for b in blocks if "def seal(" in b]
    return seal


def test_the_documented_sealing_code_makes_bids_the_server_opens():
    namespace: dict = {}
    exec(_snippet(), namespace)
    private = sealing.generate_private_key()
    public = base64.b64encode(sealing.public_key_of(private)).decode()
    ciphertext, commitment = namespace["seal"](
        public, settings.LEDGER_ORIGIN, 12, 7, [(10600, 10), (10400, 5)]
    )
    raw = base64.b64decode(ciphertext)
    assert commitment == sealing.commitment(raw).hex()
    opened = sealing.open_bid(
        private_key=sealing.load_private_key(private),
        ciphertext=raw,
        origin=settings.LEDGER_ORIGIN,
        auction=12,
        bidder=7,
    )
    assert opened.tiers == [{"lots": 10, "price": 10600}, {"lots": 5, "price": 10400}]
    # The same bid as our own client would seal it, byte for byte but for the nonce.
    plaintext = sealing.SUITE.decrypt(
        raw, sealing.load_private_key(private), info=sealing.info(settings.LEDGER_ORIGIN, 12, 7)
    )
    assert len(plaintext) % sealing.PAD_BLOCK == 0


def test_every_auction_error_code_is_documented():
    missing = [c.value for c in AuctionErrorCode if f"| `{c.value}` |" not in GUIDE]
    assert missing == []


def test_every_auction_entry_type_is_specified_in_the_ledger_format():
    spec = (DOCS / "ledger-format.md").read_text()
    missing = [t for t in sorted(AUCTION_ENTRY_TYPES) if f"`{t}`" not in spec]
    assert missing == []
