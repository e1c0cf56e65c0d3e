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

Trustee sealing (``seal_threshold``): the auction names n trustees and a threshold k, and
each trustee has one key of its own assigned to the auction (registered by its public key; the
private key never leaves the trustee before the close). The bidder makes a fresh X25519 key pair
for the bid, seals the plaintext above to it exactly as above (the body), splits the bid key's
32 private bytes k-of-n with Shamir's scheme over GF(2^8) (``shamir``: a share is its 32
y-bytes and its x byte), and seals share i to trustee i's key. The envelope is::

    share box 1 || ... || share box n || body        (share box: 81 bytes, body: enc || ct)

A share box is ``enc (32) || ciphertext (33 + 16)``, HPKE in the same suite with the info::

    "bluecarbon/auction-share/v1\n" <origin> "\n" <auction id> "\n" <bidder id> "\n" <i>

(i from 1, the trustee's position in the rules), so a box opens only as that bidder's share for
that trustee in that auction. Any k released trustee keys open their k boxes, the shares give
the bid key back, and the bid key opens the body; k - 1 shares tell nothing about it.

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

from . import shamir

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
SUITE_NAME = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM"
ENC_LENGTH = 32
TAG_LENGTH = 16
PAD_BLOCK = 256
# A plaintext larger than this is no bid of ours (20 tiers fit in well under 1 KiB).
MAX_CIPHERTEXT = 4096
PLAINTEXT_VERSION = 1
SHARE_LENGTH = 33  # a Shamir share of a 32-byte X25519 private key: y (32) || x (1)
SHARE_BOX = ENC_LENGTH + SHARE_LENGTH + TAG_LENGTH  # 81
MAX_TRUSTEES = 16
MAX_ENVELOPE = MAX_TRUSTEES * SHARE_BOX + MAX_CIPHERTEXT
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


def share_info(origin: str, auction: int, bidder: int, position: int) -> bytes:
    return f"bluecarbon/auction-share/v1\n{origin}\n{auction}\n{bidder}\n{position}".encode()


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


def seal_threshold(
    *,
    trustee_keys: list[bytes],
    threshold: int,
    origin: str,
    auction: int,
    bidder: int,
    tiers: list[dict[str, int]],
) -> bytes:
    """A bid sealed to the auction's trustees (``trustee_keys`` in their order in the rules):
    any ``threshold`` of them open it together, fewer cannot."""
    bid_key = X25519PrivateKey.generate()
    body = SUITE.encrypt(
        plaintext(auction, bidder, tiers), bid_key.public_key(), info=info(origin, auction, bidder)
    )
    secret = bid_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    shares = split_key(secret, len(trustee_keys), threshold)
    boxes = [
        SUITE.encrypt(
            share,
            X25519PublicKey.from_public_bytes(key),
            info=share_info(origin, auction, bidder, position),
        )
        for position, (key, share) in enumerate(zip(trustee_keys, shares, strict=True), 1)
    ]
    return b"".join(boxes) + body


def split_key(secret: bytes, n: int, k: int) -> list[bytes]:
    """The bid key's shares: Shamir k-of-n (``shamir``, which needs k >= 2); for k = 1 the
    polynomial of degree 0, each share the secret itself with its x (the position, 1..n)."""
    if k == 1:
        return [secret + bytes([x]) for x in range(1, n + 1)]
    return shamir.split(secret, n, k)


def combine_key(shares: list[bytes]) -> bytes:
    """The secret from k shares (one share: the degree-0 polynomial, its y). Only for opening:
    the shares come from boxes opened with trustee keys already published, so the table-driven
    ``combine_released`` tells nothing that is not public."""
    if len(shares) == 1:
        if len(shares[0]) < 2 or shares[0][-1] == 0:
            raise shamir.ShamirError("a share is its y bytes and a nonzero x")
        return shares[0][:-1]
    return shamir.combine_released(shares)


def check_envelope(ciphertext: bytes, trustees: int) -> None:
    """What the server checks at intake of a trustee-sealed bid, without any key: n share boxes
    and a body of a sealed bid's size."""
    boxes = SHARE_BOX * trustees
    padded = len(ciphertext) - boxes - ENC_LENGTH - TAG_LENGTH
    if not 0 < padded <= MAX_CIPHERTEXT - ENC_LENGTH - TAG_LENGTH or padded % PAD_BLOCK:
        raise SealError(
            "malformed_ciphertext",
            f"a bid sealed to {trustees} trustees is {trustees} share boxes of {SHARE_BOX} "
            f"bytes and a sealed body of {ENC_LENGTH + TAG_LENGTH} bytes and a plaintext padded "
            f"to a multiple of {PAD_BLOCK} (at most {MAX_CIPHERTEXT} in all)",
        )


def bid_key_of(
    *,
    released: dict[int, X25519PrivateKey],
    ciphertext: bytes,
    trustees: int,
    origin: str,
    auction: int,
    bidder: int,
) -> X25519PrivateKey:
    """The bid key, from the share boxes of the released trustee keys (position -> key; the
    caller gives exactly the ones the clearing uses). ``SealError`` if a box does not open or
    holds no share."""
    check_envelope(ciphertext, trustees)
    shares = []
    for position, key in sorted(released.items()):
        if not 1 <= position <= trustees:
            raise ValueError(f"trustee position {position} is not in 1..{trustees}")
        box = ciphertext[SHARE_BOX * (position - 1) : SHARE_BOX * position]
        try:
            share = SUITE.decrypt(box, key, info=share_info(origin, auction, bidder, position))
        except (InvalidTag, ValueError):
            raise SealError(
                "unreadable_share", f"the share for trustee {position} does not open"
            ) from None
        shares.append(share)
    try:
        secret = combine_key(shares)
    except shamir.ShamirError as exc:
        raise SealError("unreadable_share", f"the shares do not combine: {exc}") from None
    if len(secret) != 32:
        raise SealError("unreadable_share", "the shares do not give a 32-byte bid key")
    return X25519PrivateKey.from_private_bytes(secret)


def open_threshold_for_book(
    *,
    released: dict[int, X25519PrivateKey],
    ciphertext: bytes,
    trustees: int,
    origin: str,
    auction: int,
    bidder: int,
) -> tuple[Any, str | None]:
    """``open_for_book`` for a trustee-sealed bid: the body opened with the bid key that the
    released trustees' shares give."""
    try:
        bid_key = bid_key_of(
            released=released,
            ciphertext=ciphertext,
            trustees=trustees,
            origin=origin,
            auction=auction,
            bidder=bidder,
        )
    except SealError as exc:
        return None, exc.code
    return open_for_book(
        private_key=bid_key,
        ciphertext=ciphertext[SHARE_BOX * trustees :],
        origin=origin,
        auction=auction,
        bidder=bidder,
    )


@dataclass(frozen=True, slots=True)
class Opener:
    """What opens an auction's bids: its operator-held ``private_key``, or the ``released``
    trustee keys (position -> key) of an auction sealed to ``trustees`` trustees. One
    ``for_book`` for the clearing, the replay and the portal's recomputation."""

    private_key: X25519PrivateKey | None = None
    released: dict[int, X25519PrivateKey] | None = None
    trustees: int = 0

    def for_book(
        self, ciphertext: bytes, *, origin: str, auction: int, bidder: int
    ) -> tuple[Any, str | None]:
        if self.released is not None:
            return open_threshold_for_book(
                released=self.released,
                ciphertext=ciphertext,
                trustees=self.trustees,
                origin=origin,
                auction=auction,
                bidder=bidder,
            )
        assert self.private_key is not None, "an opener has a key or released keys"
        return open_for_book(
            private_key=self.private_key,
            ciphertext=ciphertext,
            origin=origin,
            auction=auction,
            bidder=bidder,
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
