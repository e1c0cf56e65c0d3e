"""Shamir's secret sharing (bluecarbon_audit.auctions.shamir): the field, the split and combine
properties, the refusals, and the vectors shared with the browser's library (vectors/shamir.json,
made by vectors/make_shamir_vectors.mjs)."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bluecarbon_audit.auctions.shamir import (
    ShamirError,
    combine,
    combine_released,
    inverse,
    mul,
    split,
    split_with,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "shamir.json").read_text())
EVERY_VECTOR = [
    pytest.param(v, id=f"{kind}-{v['k']}-of-{v['n']}-{len(v['secret']) // 2}B")
    for kind in ("fixed", "js_split")
    for v in VECTORS[kind]
]

byte = st.integers(0, 255)
secret_bytes = st.binary(min_size=1, max_size=32)


@st.composite
def splits(draw: Any, max_n: int = 8) -> tuple[bytes, int, int]:
    n = draw(st.integers(2, max_n))
    return draw(secret_bytes), n, draw(st.integers(2, n))


def reference_mul(a: int, b: int) -> int:
    """Schoolbook: the carry-less product as a polynomial, then its remainder mod 0x11b."""
    product = 0
    for bit in range(8):
        if b >> bit & 1:
            product ^= a << bit
    for bit in range(14, 7, -1):
        if product >> bit & 1:
            product ^= 0x11B << (bit - 8)
    return product


# The field.


def test_mul_gives_the_products_fips_197_works_out():
    # FIPS-197 §4.2 and §4.2.1.
    assert mul(0x57, 0x83) == 0xC1
    assert mul(0x57, 0x13) == 0xFE
    assert mul(0x57, 0x02) == 0xAE
    assert mul(0x57, 0x10) == 0x07


def test_mul_is_the_carryless_product_mod_0x11b_for_every_pair_of_bytes():
    table = [[mul(a, b) for b in range(256)] for a in range(256)]

    assert table == [[reference_mul(a, b) for b in range(256)] for a in range(256)]
    assert all(0 <= product <= 255 for row in table for product in row)


@given(byte, byte, byte)
def test_mul_is_commutative_associative_and_distributes_over_xor(a, b, c):
    assert mul(a, b) == mul(b, a)
    assert mul(mul(a, b), c) == mul(a, mul(b, c))
    assert mul(a, b ^ c) == mul(a, b) ^ mul(a, c)


def test_one_is_the_identity_and_zero_absorbs():
    assert [mul(a, 1) for a in range(256)] == list(range(256))
    assert {mul(a, 0) for a in range(256)} == {0}


def test_every_nonzero_byte_has_one_inverse_and_zero_has_none():
    for a in range(1, 256):
        assert mul(a, inverse(a)) == 1
        assert [b for b in range(1, 256) if mul(a, b) == 1] == [inverse(a)]
    for bad in (0, 256, -1):
        with pytest.raises(ShamirError):
            inverse(bad)


def test_0xe5_generates_every_nonzero_byte_as_the_javascript_tables_assume():
    # The library's (and Vault's) log/exp tables are powers of 0xe5 in this field.
    powers, value = [], 1
    for _ in range(255):
        powers.append(value)
        value = mul(value, 0xE5)

    assert value == 1
    assert sorted(powers) == list(range(1, 256))


# split and combine.


@given(splits(), st.data())
def test_any_k_of_the_n_shares_give_the_secret_back(split_args, data):
    secret, n, k = split_args
    shares = split(secret, n, k)

    chosen = data.draw(st.permutations(shares))[: data.draw(st.integers(k, n))]

    assert combine(chosen) == secret


@given(splits(max_n=6))
def test_every_subset_of_k_shares_gives_the_same_secret(split_args):
    secret, n, k = split_args
    shares = split(secret, n, k)

    assert {combine(subset) for subset in itertools.combinations(shares, k)} == {secret}


@given(splits())
def test_a_split_makes_n_shares_of_the_secret_length_plus_one_with_distinct_nonzero_x(split_args):
    secret, n, k = split_args
    shares = split(secret, n, k)

    assert len(shares) == n
    assert {len(share) for share in shares} == {len(secret) + 1}
    xs = [share[-1] for share in shares]
    assert len(set(xs)) == n
    assert 0 not in xs


def test_two_splits_of_one_secret_differ():
    secret = bytes(range(32))

    assert split(secret, 3, 2) != split(secret, 3, 2)


def test_the_largest_split_255_of_255_combines():
    secret = bytes([0xA5, 0x00])
    shares = split(secret, 255, 255)

    assert sorted(share[-1] for share in shares) == list(range(1, 256))
    assert combine(shares) == secret


def interpolate_at_zero(shares: list[bytes]) -> bytes:
    """What k-1 shares say of the secret: with one share, its y (the constant through it)."""
    return shares[0][:-1] if len(shares) == 1 else combine(shares)


@pytest.mark.parametrize(("k", "n"), [(2, 3), (3, 5), (5, 5)])
def test_k_minus_1_shares_say_nothing_of_the_secret(k, n):
    # Fixed secret, fresh splits: what k-1 shares interpolate to must be uniform over the 256
    # byte values, the secret's no likelier than any other. Pearson's chi-squared, 255 degrees
    # of freedom: 380 is exceeded by chance about once in a million runs (Wilson-Hilferty).
    secret = bytes([0x2A] * 8)
    draws = 1024
    counts = Counter(
        value for _ in range(draws) for value in interpolate_at_zero(split(secret, n, k)[: k - 1])
    )
    expected = draws * len(secret) / 256

    chi_squared = sum((counts[v] - expected) ** 2 / expected for v in range(256))

    assert chi_squared < 380
    assert counts[0x2A] < 3 * expected


@pytest.mark.parametrize(
    ("secret", "n", "k"),
    [
        (b"", 3, 2),
        (b"s", 1, 1),
        (b"s", 3, 1),
        (b"s", 3, 0),
        (b"s", 2, 3),
        (b"s", 256, 2),
        (b"s", 256, 256),
        (b"s", 3, True),
        (b"s", 3.0, 2),
        ("s", 3, 2),
    ],
)
def test_split_refuses_what_the_javascript_library_refuses_and_non_integers(secret, n, k):
    with pytest.raises(ShamirError):
        split(secret, n, k)


@pytest.mark.parametrize(
    "refused", VECTORS["js_refuses"], ids=lambda r: f"{r['k']}-of-{r['n']}-{r['secret_length']}B"
)
def test_split_refuses_every_split_the_javascript_library_refused(refused):
    with pytest.raises(ShamirError):
        split(bytes(refused["secret_length"]), refused["n"], refused["k"])


@pytest.mark.parametrize(
    "shares",
    [
        [],
        [b"\x07\x01"],
        [b"\x07\x01"] * 256,
        [b"\x07\x01", b"\x07\x08\x02"],
        [b"\x07\x01", b"\x08\x01"],
        [b"\x07\x00", b"\x08\x01"],
        [b"\x01", b"\x02"],
        [b"\x07\x01", "\x08\x02"],
    ],
    ids=[
        "none",
        "one",
        "256",
        "lengths-differ",
        "duplicate-x",
        "x-zero",
        "no-secret-byte",
        "not-bytes",
    ],
)
def test_combine_refuses_bad_shares(shares):
    with pytest.raises(ShamirError):
        combine(shares)
    with pytest.raises(ShamirError):
        combine_released(shares)


@pytest.mark.parametrize(
    ("coefficients", "xs"),
    [
        ([b"\x01"], [0, 1]),
        ([b"\x01"], [1, 1]),
        ([b"\x01"], [1, 256]),
        ([b"\x01\x02"], [1, 2]),
        ([], [1, 2]),
        ([b"\x01", b"\x02"], [1, 2]),
    ],
    ids=["x-zero", "duplicate-x", "x-256", "row-too-long", "k-1", "k-above-n"],
)
def test_split_with_refuses_bad_polynomials_and_xs(coefficients, xs):
    with pytest.raises(ShamirError):
        split_with(b"\x2a", coefficients=coefficients, xs=xs)


# The vectors shared with the browser.


def test_the_vectors_have_the_javascript_splits_the_browser_side_must_match():
    made = {(v["k"], v["n"], len(bytes.fromhex(v["secret"]))) for v in VECTORS["js_split"]}

    assert made == {
        (k, n, length) for k, n in [(2, 2), (2, 3), (3, 5), (5, 5)] for length in (1, 16, 32)
    }
    assert VECTORS["library"]["version"] == "0.0.4"


@pytest.mark.parametrize("vector", VECTORS["fixed"], ids=lambda v: f"{v['k']}-of-{v['n']}")
def test_split_with_makes_the_shares_of_each_fixed_vector(vector):
    shares = split_with(
        bytes.fromhex(vector["secret"]),
        coefficients=[bytes.fromhex(c) for c in vector["coefficients"]],
        xs=vector["xs"],
    )

    assert [share.hex() for share in shares] == vector["shares"]


@pytest.mark.parametrize("vector", EVERY_VECTOR)
def test_every_k_subset_of_every_vector_gives_its_secret(vector):
    shares = [bytes.fromhex(share) for share in vector["shares"]]
    assert len(shares) == vector["n"]

    for subset in itertools.combinations(shares, vector["k"]):
        assert combine(subset).hex() == vector["secret"]


# combine_released: combine by tables, for shares already public.


@st.composite
def share_lists(draw: Any) -> list[bytes]:
    """Any shares combine accepts (of any polynomials: too few for their k, or unrelated)."""
    length = draw(st.integers(2, 33))
    xs = draw(st.lists(st.integers(1, 255), min_size=2, max_size=8, unique=True))
    return [draw(st.binary(min_size=length - 1, max_size=length - 1)) + bytes([x]) for x in xs]


@given(share_lists())
def test_combine_released_gives_what_combine_gives(shares):
    assert combine_released(shares) == combine(shares)


@given(splits(), st.data())
def test_combine_released_gives_the_secret_back_from_any_k_shares(split_args, data):
    secret, n, k = split_args
    shares = data.draw(st.permutations(split(secret, n, k)))[:k]

    assert combine_released(shares) == secret


@pytest.mark.parametrize("vector", EVERY_VECTOR)
def test_combine_released_gives_each_vectors_secret(vector):
    shares = [bytes.fromhex(share) for share in vector["shares"]]

    for subset in itertools.combinations(shares, vector["k"]):
        assert combine_released(subset).hex() == vector["secret"]


def test_combine_released_gives_the_largest_split_back():
    secret = bytes(range(32))

    assert combine_released(split(secret, 255, 255)) == secret
