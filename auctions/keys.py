"""The key-encryption key that keeps each auction's HPKE private key secret until close.

The KEK is 32 random bytes in a file outside the database (``AUCTION_KEK_FILE``), hex encoded.
Auction private keys are stored as AES-256-GCM ciphertexts under it, with the auction's identity
as associated data, so a sealed key copied onto another auction's row does not open. Someone
who can read the database but not the KEK file cannot open any bid before the key is published.
In development the KEK is generated on first use with a warning; production refuses to start
without one.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)
NONCE = 12


@lru_cache(maxsize=1)
def _kek() -> bytes:
    path: Path = settings.AUCTION_KEK_FILE
    if not path.exists():
        if settings.PRODUCTION:
            raise ImproperlyConfigured(
                f"auction key-encryption key {path} does not exist; production never makes one"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(os.urandom(32).hex() + "\n")
            log.warning(
                "Generated a DEVELOPMENT auction key-encryption key at %s. "
                "Configure AUCTION_KEK_FILE in production.",
                path,
            )
    key = bytes.fromhex(path.read_text().strip())
    if len(key) != 32:
        raise ImproperlyConfigured(f"{path} must hold 32 bytes, hex encoded")
    return key


def _aad(auction_id: int) -> bytes:
    return f"bluecarbon/auction-key/v1\n{settings.LEDGER_ORIGIN}\n{auction_id}".encode()


def seal_private_key(auction_id: int, private_key: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(_kek()).encrypt(nonce, private_key, _aad(auction_id))


def open_private_key(auction_id: int, sealed: bytes) -> bytes:
    try:
        return AESGCM(_kek()).decrypt(sealed[:NONCE], sealed[NONCE:], _aad(auction_id))
    except InvalidTag:
        raise ImproperlyConfigured(
            f"auction {auction_id}'s private key does not open with the configured "
            "key-encryption key (wrong AUCTION_KEK_FILE?)"
        ) from None
