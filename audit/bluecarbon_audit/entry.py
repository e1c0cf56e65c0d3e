"""Ledger entry bytes: RFC 8785 canonical JSON, hash-chained.

Every entry is one JSON object with exactly these members (format version 1)::

    {"v": 1, "seq": 0, "prev": "<hex SHA-256 of entry seq-1's bytes, zeros for seq 0>",
     "time": "2026-11-22T22:07:02.123456Z", "type": "credit.transfer",
     "actor": "user:7", "data": {...}}

The bytes are stored verbatim and never re-encoded; auditors hash what is stored. See
docs/ledger-format.md for every entry type's ``data``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import rfc8785

FORMAT_VERSION = 1
ZERO_HASH = bytes(32)
_MEMBERS = frozenset({"v", "seq", "prev", "time", "type", "actor", "data"})


class EntryError(ValueError):
    """Entry bytes that are not a well-formed version-1 entry."""


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    prev: bytes
    time: str
    type: str
    actor: str
    data: dict[str, Any]


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a literal Z, so times sort as strings."""
    if moment.tzinfo is None:
        raise ValueError("entry times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_entry(
    *, seq: int, prev: bytes, time: str, type: str, actor: str, data: dict[str, Any]
) -> bytes:
    if len(prev) != 32:
        raise EntryError("prev must be a 32-byte hash")
    body = canonical_json(
        {
            "v": FORMAT_VERSION,
            "seq": seq,
            "prev": prev.hex(),
            "time": time,
            "type": type,
            "actor": actor,
            "data": data,
        }
    )
    # What every verifier refuses is never written. Judged by the bytes, whatever types the
    # data held (a tuple, a dict or float subclass): one search, and a parse only on a match.
    if has_float_token(body) and _holds_float(orjson.loads(body)):
        raise EntryError("entries hold integers only: a number with a fraction or an exponent")
    return body


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 bytes of ``obj``.

    orjson's sorted, compact output is exactly RFC 8785 for values made only of objects with
    string keys, arrays, strings without characters beyond the BMP, integers of at most 53 bits,
    booleans and null (the same equivalence ``decode_canonical_entry`` relies on, and
    audit/tests/test_entry.py checks); it is some 40 times faster than the ``rfc8785`` package,
    which matters for an auction result with 100,000 bids. Anything else (a float, another
    type, a character beyond the BMP) takes the exact, slow path, which also refuses what
    RFC 8785 cannot encode."""
    if _plain(obj):
        try:
            body = orjson.dumps(obj, option=_FAST)
        except orjson.JSONEncodeError:
            return rfc8785.dumps(obj)
        if body.isascii() or not _BEYOND_BMP.search(body):
            return body
    return rfc8785.dumps(obj)


def _plain(obj: Any) -> bool:
    """Only dicts with str keys, lists, str, int (and their subclasses), bool and None (an
    explicit stack, no recursion limit)."""
    stack = [obj]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            for key, value in item.items():
                if type(key) is not str:
                    return False
                push(value)
        elif kind is list:
            extend(item)
        elif (
            kind is not str
            and kind is not int
            and kind is not bool
            and item is not None
            # A str subclass (a Django choice such as Sealing.TRUSTEES) or an int subclass that
            # keeps int's own __int__ (an IntEnum): both encoders write its value (rfc8785 calls
            # int(), orjson reads the value). Before, one choice in an auction's 20 MB result
            # sent the whole entry down the slow path (1.2 s of the clearing at 100,000 bids).
            and not isinstance(item, str)
            and not (isinstance(item, int) and kind.__int__ is int.__int__)
        ):
            return False
    return True


def decode_entry(body: bytes) -> Entry:
    """Parse stored bytes. Structure is checked here; canonical form by ``is_canonical``."""
    return entry_from_json(_parse(body))


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EntryError(f"not JSON: {exc}") from None


# Where orjson's sorted compact output and RFC 8785 can differ: keys sort by UTF-16 code units
# in RFC 8785 (unlike code point order only for characters beyond the BMP, the only 4-byte
# UTF-8 sequences), and integers beyond 2**53 have no RFC 8785 form (OPT_STRICT_INTEGER makes
# orjson refuse them too).
_BEYOND_BMP = re.compile(rb"[\xf0-\xf4]")
_FAST = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
# A number with a fraction or an exponent, which orjson parses as a float and writes back in its
# own spelling (1.0, 1e16) where RFC 8785 has another (1, 10000000000000000): such bytes must
# take the exact path. In orjson's compact output a number follows a key's closing quote and
# colon, or, in an array, its bracket or a comma; the same bytes inside a string only send that
# input down the exact path, never past it. Two searches with a literal first byte, the second
# only where there is an array, cost some 0.4 microseconds per entry where one search for
# either context costs 2.6.
_FLOAT_MEMBER = re.compile(rb'":-?[0-9]+[.eE]')
_FLOAT_ELEMENT = re.compile(rb"[,\[]-?[0-9]+[.eE]")


def has_float_token(body: bytes) -> bool:
    """True if ``body``, compact JSON of an object or an array (no whitespace outside strings:
    orjson's output, RFC 8785's), may hold a number with a fraction or an exponent outside a
    string; never False when it does. Text inside a string can make it True (such an entry
    takes the exact path: slower, never wrong)."""
    return _FLOAT_MEMBER.search(body) is not None or (
        b"[" in body and _FLOAT_ELEMENT.search(body) is not None
    )


def decode_canonical_entry(body: bytes) -> Entry:
    """``decode_entry``, and also refuse bytes that are not the RFC 8785 form of their value.

    orjson (sorted keys, compact, 53-bit integers) produces exactly RFC 8785 for every value
    without characters beyond the BMP and without fractional or exponent numbers, so the common
    case costs one fast re-encode; the rest take the slow, exact path through the ``rfc8785``
    package. A number with a fraction or an exponent is refused even in its RFC 8785 form:
    entries hold integers only (docs/ledger-format.md)."""
    obj = _parse(body)
    try:
        fast = orjson.dumps(obj, option=_FAST) == body
    except orjson.JSONEncodeError:
        fast = False
    if fast and not body.isascii() and _BEYOND_BMP.search(body):
        fast = False
    if fast and (
        _FLOAT_MEMBER.search(body) is not None
        or (b"[" in body and _FLOAT_ELEMENT.search(body) is not None)
    ):  # has_float_token, inline: this is the verifiers' per-entry path
        fast = False
    if not fast:
        if not is_canonical(body):
            raise EntryError("bytes are not in RFC 8785 canonical form")
        if _holds_float(obj):
            raise EntryError(
                "a number with a fraction or an exponent: entries hold integers only "
                "(docs/ledger-format.md)"
            )
    return entry_from_json(obj)


def _holds_float(obj: Any) -> bool:
    """A float anywhere in ``obj`` (an explicit stack, no recursion limit)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float:
            return True
    return False


_INT = rb"(?:0|[1-9][0-9]{0,14})"  # at most 15 digits: always below 2**53
# Exactly the RFC 8785 bytes of a version-1 credit.transfer entry with an ASCII actor: members
# in sorted order, no whitespace, integers without sign or leading zeros, no escapes needed.
TRANSFER_BYTES = re.compile(
    rb'\{"actor":"[\x20\x21\x23-\x5b\x5d-\x7e]*","data":\{"batch":(?P<batch>'
    + _INT
    + rb'),"from":(?P<src>'
    + _INT
    + rb'),"quantity":(?P<qty>'
    + _INT
    + rb'),"to":(?P<dst>'
    + _INT
    + rb')\},"prev":"(?P<prev>[0-9a-f]{64})","seq":(?P<seq>'
    + _INT
    + rb'),"time":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z",'
    rb'"type":"credit\.transfer","v":1\}'
)

# ``TRANSFER_BYTES`` with ``prev`` and ``time`` loosened to any 64 and 27 bytes, for verifiers
# that prove many entries at once and check those two for all of them together (``prev`` against
# the hashes of the entries before, ``time`` digit by digit against TIME_SHAPE): cheaper than
# the regex engine byte by byte (``scan`` for the registry's rows, ``scanbundle`` for bundles).
_PREV = rb"(?P<prev>[0-9a-f]{64})"
_TIME = rb'"time":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z"'
if TRANSFER_BYTES.pattern.count(_PREV) != 1 or TRANSFER_BYTES.pattern.count(_TIME) != 1:
    raise ImportError("TRANSFER_BYTES changed: update TRANSFER_LOOSE to match it")
TRANSFER_LOOSE = TRANSFER_BYTES.pattern.replace(_PREV, rb"(?P<prev>.{64})").replace(
    _TIME, rb'"time":"(?P<time>.{27})"'
)  # compile with re.DOTALL
TIME_SHAPE = b"0000-00-00T00:00:00.000000Z"
DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)


def entry_from_json(obj: Any) -> Entry:
    if type(obj) is not dict or obj.keys() != _MEMBERS:
        raise EntryError("members must be exactly " + ", ".join(sorted(_MEMBERS)))
    if type(obj["v"]) is not int or obj["v"] != FORMAT_VERSION:  # not true, not 1.0
        raise EntryError(f"unknown format version {obj['v']!r}")
    seq, prev, data = obj["seq"], obj["prev"], obj["data"]
    if type(seq) is not int or seq < 0:
        raise EntryError("seq must be a non-negative integer")
    if type(prev) is not str or len(prev) != 64:
        raise EntryError("prev must be 64 hex digits")
    try:
        prev_bytes = bytes.fromhex(prev)
    except ValueError:
        raise EntryError("prev must be 64 hex digits") from None
    time, type_, actor = obj["time"], obj["type"], obj["actor"]
    if type(time) is not str or type(type_) is not str or type(actor) is not str:
        raise EntryError("time, type and actor must be strings")
    if type(data) is not dict:
        raise EntryError("data must be an object")
    return Entry(seq, prev_bytes, time, type_, actor, data)


def is_canonical(body: bytes) -> bool:
    """True if ``body`` is exactly the RFC 8785 encoding of what it parses to."""
    try:
        return rfc8785.dumps(json.loads(body)) == body
    except (ValueError, rfc8785.CanonicalizationError):  # includes UnicodeDecodeError
        return False


ENTRY_MAC_DOMAIN = b"bluecarbon/entry-mac/v1\n"


def entry_mac(key: bytes, digest: bytes) -> bytes:
    """The log operator's authentication of an entry: HMAC-SHA256 under a key the application
    holds and its database does not, of the entry's hash (``entry_hash``). Not part of the entry
    bytes; only the operator can check it (docs/ledger-format.md)."""
    return hmac.digest(key, ENTRY_MAC_DOMAIN + digest, "sha256")


class EntryMacs:
    """``entry_mac`` under one key, for many entries: the same HMAC-SHA256, with the hash states
    after the padded key and the domain computed once (RFC 2104 §4 allows keeping them). A
    verifier checks a MAC per entry; this halves what each one costs (0.7 instead of 1.6 us)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # HMAC hashes a key longer than the block first
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + ENTRY_MAC_DOMAIN)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __call__(self, digest: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(digest)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def many(self, digests: Iterable[bytes]) -> list[bytes]:
        """The MAC of each digest, in order."""
        inner_copy, outer_copy = self._inner.copy, self._outer.copy
        out = []
        for digest in digests:
            inner = inner_copy()
            inner.update(digest)
            outer = outer_copy()
            outer.update(inner.digest())
            out.append(outer.digest())
        return out


def entry_hash(body: bytes) -> bytes:
    """The chain hash: SHA-256 of the entry bytes (the next entry's ``prev``)."""
    return hashlib.sha256(body).digest()
