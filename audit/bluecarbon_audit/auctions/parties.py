"""Who bid, hidden until the close: the pseudonyms that bid and deposit entries carry.

Before an auction's bidding ends the public ledger must not say who bids or who put down a
deposit (docs/auctions.md §3.7). A bid entry carries its bid's **party**, and a deposit entry
its deposit's **depositor**: SHA-256 commitments, hiding (a fresh 32-byte random salt each)
and binding, to the organization (and, for each version of a bid, to the account its credits
would go to). The ``auction.reveal`` entry, appended with ``auction.close``, opens them all:
each bid's bidder, account and salt, each deposit's bidder and salt. The verifier recomputes
every commitment and only then checks what it could not check before (the bidder was
approved and had its deposit when it bid, and is not the seller).

Each is the lowercase hex SHA-256 of the UTF-8 text, fields separated by LF, ids in decimal,
the salt in lowercase hex::

    party       "bluecarbon/bid-party/v1"     origin auction bid bidder salt
    account     "bluecarbon/bid-account/v1"   origin auction bid version account salt
    depositor   "bluecarbon/deposit-party/v1" origin auction bidder salt
    paddle      "bluecarbon/paddle/v1"        origin auction bidder account salt

A **paddle** is a bidder's pseudonym in an English auction, where bids are open prices: one
per bidder and auction, on each of its ``bid.raise`` entries, so that everyone sees who is
bidding against whom without learning who they are. It commits to the account the lot would be
delivered to as well.

No Django import: the server writes these and auditors recompute them with the same code.
"""

from __future__ import annotations

import hashlib
import os

SALT_LENGTH = 32


def new_salt() -> bytes:
    return os.urandom(SALT_LENGTH)


def _h(*fields: object) -> str:
    return hashlib.sha256("\n".join(str(f) for f in fields).encode()).hexdigest()


def party(origin: str, auction: int, bid: int, bidder: int, salt: bytes) -> str:
    return _h("bluecarbon/bid-party/v1", origin, auction, bid, bidder, salt.hex())


def account_commitment(
    origin: str, auction: int, bid: int, version: int, account: int, salt: bytes
) -> str:
    return _h("bluecarbon/bid-account/v1", origin, auction, bid, version, account, salt.hex())


def depositor(origin: str, auction: int, bidder: int, salt: bytes) -> str:
    return _h("bluecarbon/deposit-party/v1", origin, auction, bidder, salt.hex())


def paddle(origin: str, auction: int, bidder: int, account: int, salt: bytes) -> str:
    return _h("bluecarbon/paddle/v1", origin, auction, bidder, account, salt.hex())
