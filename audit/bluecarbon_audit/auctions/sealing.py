"""Sealed bids: HPKE (RFC 9180) to the auction's key, bound to the auction and the bidder.

Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode, single shot with an
empty aad (RFC 9180 §6.1). The wire form of a sealed bid is ``enc (32 bytes) || ciphertext`` as
``cryptography``'s single-shot API makes it; its SHA-256 is the bid's commitment.

``info`` (RFC 9180 §8.1: the application's context for single-shot use) binds a ciphertext to one
ledger, one auction and one bidder, so it cannot be replayed into another auction or claimed by
another bidder: it opens only with the same three values::

    "bluecarbon/auction-bid/v1\\n" <origin> "\\n" <auction id> "\\n" <bidder organization id>

The plaintext is the RFC 8785 JSON of::

    {"auction": 12, "bidder": 7, "nonce": "<base64url, 16 random bytes>", "pad": "000…",
     "tiers": [{"lots": 10, "price": 10600}, ...], "v": 1}

``pad`` (zeros) makes the plaintext a multiple of 256 bytes, so a ciphertext's length does not
tell how many tiers it holds. Prices are minor currency units per tonne; lots are whole lots.
docs/auctions.md is the specification for other clients (the browser's seal.js is one).

No Django import: auditors reuse this to reopen every bid after the key is published.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
SUITE_NAME = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM"
ENC_LENGTH = 32
TAG_LENGTH = 16
PAD_BLOCK = 256
# A plaintext larger than this is no bid of ours (20 tiers fit in well under 1 KiB).
MAX_CIPHERTEXT = 4096
PLAINTEXT_VERSION = 1
_MEMBERS = {"auction", "bidder", "nonce", "pad", "tiers", "v"}


class SealError(ValueError):
    """A sealed bid that cannot be opened or does not say what a bid must. ``code`` is the
    stable reason recorded against the bid."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Opened:
    auction: int
    bidder: int
    tiers: (
        Any  # as decoded; the clearing rules check its shape (bluecarbon_audit.auctions.clearing)
    )


# ---- keys ---------------------------------------------------------------------------------


def generate_private_key() -> bytes:
    return X25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )


def public_key_of(private_key: bytes) -> bytes:
    return (
        X25519PrivateKey.from_private_bytes(private_key)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


# ---- the binding ----------------------------------------------------------------------------


def info(origin: str, auction: int, bidder: int) -> bytes:
    return f"bluecarbon/auction-bid/v1\n{origin}\n{auction}\n{bidder}".encode()


def commitment(ciphertext: bytes) -> bytes:
    return hashlib.sha256(ciphertext).digest()


def plaintext(
    auction: int, bidder: int, tiers: list[dict[str, int]], nonce: bytes | None = None
) -> bytes:
    """The canonical, padded plaintext of a bid (what a client seals)."""
    body: dict[str, Any] = {
        "auction": auction,
        "bidder": bidder,
        "nonce": base64.urlsafe_b64encode(nonce or os.urandom(16)).rstrip(b"=").decode(),
        "pad": "",
        "tiers": [{"lots": t["lots"], "price": t["price"]} for t in tiers],
        "v": PLAINTEXT_VERSION,
    }
    unpadded = len(rfc8785.dumps(body))
    body["pad"] = "0" * (-unpadded % PAD_BLOCK)
    return rfc8785.dumps(body)


# ---- seal and open --------------------------------------------------------------------------


def seal(
    *, public_key: bytes, origin: str, auction: int, bidder: int, tiers: list[dict[str, int]]
) -> bytes:
    """A sealed bid, as the Python client (and tests, and the benchmarks) make one."""
    return SUITE.encrypt(
        plaintext(auction, bidder, tiers),
        X25519PublicKey.from_public_bytes(public_key),
        info=info(origin, auction, bidder),
    )


def _reject_float(text: str) -> Any:
    raise SealError("malformed_plaintext", f"non-integer number {text} in the plaintext")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise SealError("malformed_plaintext", f"member {key!r} appears twice")
        obj[key] = value
    return obj


def check_ciphertext(ciphertext: bytes) -> None:
    """What the server checks at intake, before close, without the key."""
    if not ENC_LENGTH + TAG_LENGTH < len(ciphertext) <= MAX_CIPHERTEXT:
        raise SealError(
            "malformed_ciphertext",
            f"a sealed bid is {ENC_LENGTH + TAG_LENGTH + 1} to {MAX_CIPHERTEXT} bytes",
        )


def open_bid(
    *, private_key: X25519PrivateKey, ciphertext: bytes, origin: str, auction: int, bidder: int
) -> Opened:
    """Open one sealed bid; raise ``SealError`` with the reason it does not count."""
    try:
        check_ciphertext(ciphertext)
        text = SUITE.decrypt(ciphertext, private_key, info=info(origin, auction, bidder))
    except (InvalidTag, ValueError) as exc:
        if isinstance(exc, SealError):
            raise
        # Wrong key, tampered bytes, or sealed for another auction or bidder (info differs).
        raise SealError(
            "unreadable", "the sealed bid does not open with this auction's key"
        ) from None
    try:
        obj = json.loads(
            text.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_float=_reject_float,
            parse_constant=_reject_float,
        )
    except SealError:
        raise
    except ValueError:  # includes UnicodeDecodeError
        raise SealError("malformed_plaintext", "the plaintext is not JSON") from None
    if type(obj) is not dict or not {"auction", "bidder", "tiers", "v"} <= obj.keys():
        raise SealError("malformed_plaintext", "the plaintext is not a bid object")
    if set(obj) - _MEMBERS:
        raise SealError("malformed_plaintext", "unknown members in the plaintext")
    if obj["v"] != PLAINTEXT_VERSION or type(obj["v"]) is not int:
        raise SealError("malformed_plaintext", f"unknown plaintext version {obj['v']!r}")
    # The info binding already makes these match; checking the claim as well keeps a client
    # bug (sealing the right info around the wrong plaintext) from counting.
    if type(obj["auction"]) is not int or obj["auction"] != auction:
        raise SealError("wrong_auction", "the plaintext names another auction")
    if type(obj["bidder"]) is not int or obj["bidder"] != bidder:
        raise SealError("wrong_bidder", "the plaintext names another bidder")
    return Opened(auction=auction, bidder=bidder, tiers=obj["tiers"])


def open_for_book(
    *, private_key: X25519PrivateKey, ciphertext: bytes, origin: str, auction: int, bidder: int
) -> tuple[Any, str | None]:
    """``(tiers, None)`` for a bid that opens, ``(None, code)`` for one that does not count:
    what the book of a clearing holds for each bid."""
    try:
        opened = open_bid(
            private_key=private_key,
            ciphertext=ciphertext,
            origin=origin,
            auction=auction,
            bidder=bidder,
        )
    except SealError as exc:
        return None, exc.code
    return opened.tiers, None


def load_private_key(raw: bytes) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(raw)
