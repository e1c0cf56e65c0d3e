"""A trustee's one-time auction keys, all derived from one secret seed on its own machine.

Key ``i`` is the X25519 private key whose 32 bytes are::

    HMAC-SHA256(seed, "bluecarbon/trustee-key/v1\\n" <i in decimal>)

(RFC 7748 §5: any 32 bytes are a private key; the function clamps them). One seed to back up
gives as many keys as the trustee registers, and releasing key ``i`` after an auction's close
tells nothing about any other key or about the seed (HMAC is a pseudorandom function). The
seed never leaves the trustee; the registry sees public keys before the close and one private
key per auction after it.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from .sealing import public_key_of

SEED_LENGTH = 32


def new_seed() -> bytes:
    return os.urandom(SEED_LENGTH)


def private_key(seed: bytes, index: int) -> bytes:
    if len(seed) != SEED_LENGTH:
        raise ValueError(f"a trustee seed is {SEED_LENGTH} bytes")
    if index < 0:
        raise ValueError("key indexes start at 0")
    return hmac.digest(seed, f"bluecarbon/trustee-key/v1\n{index}".encode(), hashlib.sha256)


def public_key(seed: bytes, index: int) -> bytes:
    return public_key_of(private_key(seed, index))


def find(seed: bytes, public: bytes, *, limit: int = 100_000) -> int | None:
    """The index of ``public`` among the seed's first ``limit`` keys, or None (a key the
    registry says is this trustee's but that it never made)."""
    for index in range(limit):
        if public_key(seed, index) == public:
            return index
    return None
