"""Known-answer vectors for auctions.core.draws (docs/auctions-clearing.md §5). Pure Python.

The vectors were computed once with this implementation and checked by hand against the
definition: each block below is `hashlib.sha256(DOMAIN + seed + i.to_bytes(8, "big"))`, and the
words are its four 8-byte big-endian slices. Another implementation passes if it reproduces
every number here.
"""

from __future__ import annotations

import hashlib

import pytest

from auctions.core.draws import DOMAIN, Draws

ZERO_SEED = bytes(32)
COUNTING_SEED = bytes(range(32))  # 00 01 02 ... 1f

BLOCKS = {
    (ZERO_SEED, 0): "c10ac4f687e467cc253f1b3ceeb0840edd8c37d217b70bf7d70d2bbadaf6756b",
    (ZERO_SEED, 1): "7fe7927d043d7ca124c1836cec513b244553ef1c2bd0d7af1070c86a0095b376",
    (COUNTING_SEED, 0): "d9ca7732fdff7b401ffdba1b60cae452a7324ef24fc725074f768f68c848c66c",
    (COUNTING_SEED, 1): "cd96ab68c2d9cb200f2d37d762733a2facf29bee262ccd235e004c03be75e127",
}
ZERO_SEED_WORDS = [
    13910146962208090060,  # block 0
    2683893851452638222,
    15964196154602097655,
    15496089974389241195,
    9216496228076715169,  # block 1
    2648542559715015460,
    4995599315957241775,
    1184667059600339830,
]


def test_the_domain_string_is_fixed():
    assert DOMAIN == b"bluecarbon/auction-draws/v1"


@pytest.mark.parametrize(("seed", "index"), sorted(BLOCKS, key=lambda k: (k[0].hex(), k[1])))
def test_each_block_is_sha256_of_domain_seed_and_counter(seed: bytes, index: int):
    block = hashlib.sha256(DOMAIN + seed + index.to_bytes(8, "big")).hexdigest()
    assert block == BLOCKS[seed, index]


def test_the_words_are_the_blocks_big_endian_64_bit_slices():
    words = []
    for index in (0, 1):
        block = bytes.fromhex(BLOCKS[ZERO_SEED, index])
        words += [int.from_bytes(block[k : k + 8], "big") for k in range(0, 32, 8)]
    assert words == ZERO_SEED_WORDS


def test_below_2_to_the_64_returns_the_raw_words_in_order():
    # n = 2**64 never rejects and x % n == x, so it exposes the stream itself.
    draws = Draws(ZERO_SEED)
    assert [draws.below(2**64) for _ in range(8)] == ZERO_SEED_WORDS


def test_below_ten_from_the_zero_seed():
    # 2**64 % 10 == 6, so only the top 6 words are rejected: none of these. Each is word % 10.
    draws = Draws(ZERO_SEED)
    assert [draws.below(10) for _ in range(8)] == [0, 2, 5, 5, 9, 0, 5, 0]
    assert [w % 10 for w in ZERO_SEED_WORDS] == [0, 2, 5, 5, 9, 0, 5, 0]


def test_below_ten_from_the_counting_seed():
    draws = Draws(COUNTING_SEED)
    assert [draws.below(10) for _ in range(8)] == [8, 0, 9, 2, 6, 3, 9, 9]


def test_below_one_consumes_nothing():
    # Words: w0 % 2 = 0, w1 % 3 = 0, (below(1): no word), w2 % 1000 = 655, w3 % 2**64 = w3,
    # w4 % 6 = 1.
    draws = Draws(ZERO_SEED)
    got = [draws.below(n) for n in (2, 3, 1, 1000, 2**64, 6)]
    assert got == [0, 0, 0, 655, 15496089974389241195, 1]


def test_words_at_or_above_the_limit_are_drawn_again():
    # n = 2**63 + 1: limit = 2**64 - (2**64 % n) = 2**63 + 1, so about half the words are
    # rejected. w0 (>= limit) is skipped; w1 is taken; w2 and w3 are skipped; the next block's
    # w4 is taken; then w5 and w6.
    n = 2**63 + 1
    draws = Draws(ZERO_SEED)
    got = [draws.below(n) for _ in range(4)]
    w = ZERO_SEED_WORDS
    assert got == [w[1], w[4], w[5], w[6]]
    assert w[0] >= n and w[2] >= n and w[3] >= n


def test_the_same_seed_gives_the_same_stream_and_another_seed_another():
    a, b, c = Draws(ZERO_SEED), Draws(ZERO_SEED), Draws(COUNTING_SEED)
    first = [a.below(1000) for _ in range(50)]
    assert first == [b.below(1000) for _ in range(50)]
    assert first != [c.below(1000) for _ in range(50)]


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), bytearray(32), "0" * 32, None])
def test_it_refuses_a_seed_that_is_not_32_bytes(seed: object):
    with pytest.raises(ValueError):
        Draws(seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [0, -1, 2**64 + 1, True, 2.0, "3"])
def test_it_refuses_a_bound_outside_1_to_2_to_the_64(n: object):
    with pytest.raises(ValueError):
        Draws(ZERO_SEED).below(n)  # type: ignore[arg-type]
