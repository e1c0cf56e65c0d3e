"""Deterministic randomness for auction tie-breaks, recomputable by anyone holding the seed.

The seed is the SHA-256 of the ledger entry that closed bidding, so it is fixed (and public)
only after every sealed bid is on the ledger: nobody, the operator included, can pick bids that
win a tie. The stream is SHA-256 in counter mode; see docs/auctions-clearing.md §5 for the
byte-level definition and known-answer vectors.
"""

from __future__ import annotations

import hashlib

DOMAIN = b"bluecarbon/auction-draws/v1"
SEED_SIZE = 32
_WORD = 2**64
_WORDS_PER_BLOCK = 4  # a 32-byte SHA-256 block holds four 64-bit words


class Draws:
    """Deterministic, auditor-recomputable randomness from a 32-byte seed (the SHA-256 of the
    ledger entry that closed bidding)."""

    __slots__ = ("_block", "_seed", "_words")

    def __init__(self, seed: bytes) -> None:
        if type(seed) is not bytes or len(seed) != SEED_SIZE:
            raise ValueError(f"the draw seed must be {SEED_SIZE} bytes")
        self._seed = seed
        self._block = 0  # index of the next block to hash
        self._words: list[int] = []  # unconsumed words of the current block, next one last

    def _next_word(self) -> int:
        if not self._words:
            digest = hashlib.sha256(DOMAIN + self._seed + self._block.to_bytes(8, "big")).digest()
            self._block += 1
            words = [
                int.from_bytes(digest[8 * k : 8 * k + 8], "big") for k in range(_WORDS_PER_BLOCK)
            ]
            self._words = words[::-1]  # reversed, so pop() yields them in order
        return self._words.pop()

    def below(self, n: int) -> int:
        """Uniform in [0, n), n >= 1, by rejection sampling (no modulo bias)."""
        if type(n) is not int or not 1 <= n <= _WORD:
            raise ValueError("below(n) needs an integer 1 <= n <= 2**64")
        if n == 1:
            return 0  # nothing to choose: consume nothing, so the stream stays aligned
        # The largest multiple of n that fits in 64 bits: words at or above it would make
        # small results more likely than large ones, so they are drawn again.
        limit = _WORD - (_WORD % n)
        while True:
            x = self._next_word()
            if x < limit:
                return x % n
