"""Shamir's secret sharing over GF(2^8), byte by byte, in the one encoding both sides use.

The bidder's browser splits with the vendored ``shamir-secret-sharing`` 0.0.4 (privy-io,
auctions/static/auctions/vendor/shamir/); Python clients split with this module, and the
trustees and auditors combine with it. The shared vectors (audit/tests/vectors/shamir.json)
and the browser test hold the two to the same field and the same shares.

The field and the encoding, as HashiCorp Vault's ``shamir`` package has them:

- GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11b), FIPS-197 §4.2: addition is
  XOR, multiplication is carry-less multiplication reduced by the polynomial.
- Each byte ``s`` of the secret gets its own polynomial ``f(x) = s + c1·x + … + c(k-1)·x^(k-1)``
  whose coefficients are uniformly random bytes, zero included: forcing the top one nonzero
  would rule out one secret byte for every set of k-1 shares (the JavaScript library did that
  from 0.0.1 to 0.0.3 and took it out again in 0.0.4).
- A share is ``f(x) for every byte, in order (as long as the secret) || x (1 byte)``. The n
  shares of a split have distinct x, each in 1..255 and drawn at random (the JavaScript library
  shuffles 1..255 and takes the first n; here ``random.SystemRandom().sample``).

The rules, those of the JavaScript library (so that whatever one side accepts the other does):

- ``split``: the secret is at least 1 byte; 2 <= k <= n <= 255. The library refuses threshold 1
  and so does this module: a 1-of-n split would be n copies of the secret, no sharing at all.
- ``combine``: 2 to 255 shares, each at least 2 bytes, all of one length, with distinct x. Here
  x = 0 is refused too (``split`` never makes it, and such a "share" would carry the secret in
  the clear); the JavaScript ``combine`` does not check it.
- ``combine`` cannot know k: it interpolates through exactly the shares given. Fewer than k
  shares give a wrong secret without an error, so a caller checks what it gets back (for an
  X25519 private key: that its public key is the one published).

Timing: ``mul`` runs the same eight rounds of shifts, XORs and masks whatever its operands are,
with no branch on them and no table indexed by them, and the x coordinates (the only values
divided by) are public. CPython gives no constant-time guarantee for its integers, so this is
"no secret-dependent branches or lookups", not constant time. The JavaScript library multiplies
with log/exp tables indexed by secret bytes (a cache-timing channel in principle) and, in its
README's words, aims for "algorithmic constant-time" only, a JIT-compiled, garbage-collected
language making true constant time unrealistic.

``combine_released`` gives what ``combine`` gives, with the same refusals, through log/exp
tables and ``bytes.translate``, 15 to 20 times faster: it is for opening bids after the close,
when the trustees' keys that open the share boxes are published on the ledger, so the shares
and the secret are anyone's to compute and a table indexed by them tells nothing new. (At
10,000 bids, ``combine`` was a third of the opening's time.) Splitting and anything before the
release use ``split`` and ``combine``.

No Django import: auditors reuse this to open the auction key from the trustees' shares.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from random import SystemRandom

POLYNOMIAL = 0x11B
MIN_THRESHOLD = 2
MAX_SHARES = 255

_RANDOM = SystemRandom()


class ShamirError(ValueError):
    """Input that cannot be split or combined."""


def mul(a: int, b: int) -> int:
    """a·b in GF(2^8) mod 0x11b; a and b are bytes (0..255)."""
    product = 0
    for _ in range(8):
        product ^= -(b & 1) & a
        # xtime (FIPS-197 §4.2.1): a·x, reduced when the x^8 term appears.
        a = (a << 1) ^ (-(a >> 7) & POLYNOMIAL)
        b >>= 1
    return product


def inverse(a: int) -> int:
    """The multiplicative inverse of a nonzero byte: a^254, the group of units having order 255."""
    if not 0 < a <= 0xFF:
        raise ShamirError(f"{a} has no inverse in GF(2^8)")
    result = 1
    for _ in range(7):  # 254 = 2 + 4 + … + 128
        a = mul(a, a)
        result = mul(result, a)
    return result


def split(secret: bytes, n: int, k: int) -> list[bytes]:
    """n shares of ``secret``, any k of which give it back (k-1 of them tell nothing of it)."""
    _check_secret(secret)
    _check_counts(n, k)
    xs = _RANDOM.sample(range(1, MAX_SHARES + 1), n)
    coefficients = [secrets.token_bytes(len(secret)) for _ in range(k - 1)]
    return split_with(secret, coefficients=coefficients, xs=xs)


def split_with(secret: bytes, *, coefficients: Sequence[bytes], xs: Sequence[int]) -> list[bytes]:
    """The shares at ``xs`` of the polynomials ``secret + coefficients[0]·x + …``: coefficient j
    of byte i's polynomial is ``coefficients[j - 1][i]``. ``split`` draws both at random; this
    is for fixed test vectors."""
    _check_secret(secret)
    _check_counts(len(xs), len(coefficients) + 1)
    if any(not isinstance(c, bytes | bytearray) or len(c) != len(secret) for c in coefficients):
        raise ShamirError("every coefficient row must be bytes as long as the secret")
    if any(not isinstance(x, int) or not 0 < x <= MAX_SHARES for x in xs):
        raise ShamirError("every x must be in 1..255")
    if len(set(xs)) != len(xs):
        raise ShamirError("the x coordinates must be distinct")

    rows = [bytes(secret), *map(bytes, coefficients)]  # rows[j][i]: byte i's x^j coefficient
    shares = []
    for x in xs:
        # Horner's rule, every byte's polynomial at once, from the highest coefficient down.
        y = rows[-1]
        for row in reversed(rows[:-1]):
            y = bytes(mul(acc, x) ^ c for acc, c in zip(y, row, strict=True))
        shares.append(y + bytes([x]))
    return shares


def combine(shares: Sequence[bytes]) -> bytes:
    """The secret of the polynomials through exactly these shares (Lagrange at x = 0)."""
    xs = _check_shares(shares)
    length = len(shares[0])

    # The Lagrange basis at 0 depends on the xs only: l_i = Π_{j≠i} x_j / (x_i + x_j), "+"
    # being "-" in characteristic 2.
    basis = []
    for i, xi in enumerate(xs):
        numerator = denominator = 1
        for j, xj in enumerate(xs):
            if j != i:
                numerator = mul(numerator, xj)
                denominator = mul(denominator, xi ^ xj)
        basis.append(mul(numerator, inverse(denominator)))

    secret = bytearray(length - 1)
    for share, li in zip(shares, basis, strict=True):
        for index in range(length - 1):
            secret[index] ^= mul(share[index], li)
    return bytes(secret)


def _log_exp() -> tuple[list[int], list[int]]:
    """Discrete logarithms to the generator 3 (FIPS-197 §4.1's field), and powers of 3 over
    two periods, so that a sum of two logarithms indexes ``exp`` without a reduction."""
    log, exp = [0] * 256, [0] * 510
    x = 1
    for i in range(255):
        exp[i] = exp[i + 255] = x
        log[x] = i
        x = mul(x, 3)
    return log, exp


_LOG, _EXP = _log_exp()
_ROWS: dict[int, bytes] = {}  # c -> the table of b·c for every byte b (for bytes.translate)


def _row(c: int) -> bytes:
    row = _ROWS.get(c)
    if row is None:
        row = _ROWS[c] = bytes([0]) + bytes(_EXP[_LOG[b] + _LOG[c]] for b in range(1, 256))
    return row


def combine_released(shares: Sequence[bytes]) -> bytes:
    """``combine`` for shares that are public already (opened with trustee keys published on
    the ledger): the same secret and the same refusals, by table lookups indexed by the shares
    (see the module's note on timing)."""
    xs = _check_shares(shares)
    logs = [_LOG[x] for x in xs]
    secret = 0
    for i, (share, xi) in enumerate(zip(shares, xs, strict=True)):
        # l_i = Π_{j≠i} x_j / (x_i + x_j), as a logarithm; never 0, the xs being distinct.
        log_l = sum(logs[j] - _LOG[xi ^ xj] for j, xj in enumerate(xs) if j != i) % 255
        secret ^= int.from_bytes(bytes(share[:-1]).translate(_row(_EXP[log_l])), "big")
    return secret.to_bytes(len(shares[0]) - 1, "big")


def _check_shares(shares: Sequence[bytes]) -> list[int]:
    """What ``combine`` refuses; the xs of the shares it accepts."""
    if not 2 <= len(shares) <= MAX_SHARES:
        raise ShamirError(f"combine takes 2 to {MAX_SHARES} shares, not {len(shares)}")
    if any(not isinstance(share, bytes | bytearray) for share in shares):
        raise ShamirError("every share must be bytes")
    length = len(shares[0])
    if length < 2:
        raise ShamirError("a share is at least 2 bytes: one of the secret, then its x")
    if any(len(share) != length for share in shares):
        raise ShamirError("the shares are not all of one length")
    xs = [share[-1] for share in shares]
    if 0 in xs:
        raise ShamirError("a share's x must not be 0")
    if len(set(xs)) != len(xs):
        raise ShamirError("two shares have the same x")
    return xs


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes | bytearray):
        raise ShamirError("the secret must be bytes")
    if not secret:
        raise ShamirError("the secret cannot be empty")


def _check_counts(n: int, k: int) -> None:
    for name, value in (("n", n), ("k", k)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ShamirError(f"{name} must be an integer")
    if not MIN_THRESHOLD <= k <= MAX_SHARES:
        raise ShamirError(f"k must be 2 to {MAX_SHARES}, not {k}")
    if not MIN_THRESHOLD <= n <= MAX_SHARES:
        raise ShamirError(f"n must be 2 to {MAX_SHARES}, not {n}")
    if n < k:
        raise ShamirError(f"n ({n}) cannot be less than k ({k})")
