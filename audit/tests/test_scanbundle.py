"""``scan_bundle`` proves transfers by their pattern (``TRANSFER_LOOSE``, ``prev`` and ``time``
checked for the whole bundle) and everything else by parsing; whatever is done to a bundle's
entries, what it returns is exactly what the general path (every entry parsed, or one by one)
returns: the same leaves, root, hashes, kinds, moves, other entries and first problem."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluecarbon_audit import scanbundle
from bluecarbon_audit.entry import ZERO_HASH, encode_entry
from bluecarbon_audit.tiles import TILE_WIDTH


def entries(first: int, n: int, other_every: int, prev: bytes = ZERO_HASH) -> list[bytes]:
    out = []
    for seq in range(first, first + n):
        if other_every and seq % other_every == other_every - 1:
            kind, data = "credit.retire", {"retirement": {"account": 1, "quantity": 5}}
        else:
            kind = "credit.transfer"
            data = {"batch": 1 + seq % 3, "from": 2, "quantity": 10 + seq, "to": 3 + seq % 5}
        actor = "org:bench" if seq % 7 else "org:海洋"  # not ASCII: not the pattern's
        body = encode_entry(
            seq=seq, prev=prev, time="2026-11-22T23:08:02.031273Z", type=kind, actor=actor,
            data=data,
        )  # fmt: skip
        out.append(body)
        prev = hashlib.sha256(body).digest()
    return out


def rechain(bodies: list[bytes]) -> list[bytes]:
    out = bodies[:1]
    for body in bodies[1:]:
        at = body.find(b'"prev":"')
        if at >= 0:
            prev = hashlib.sha256(out[-1]).hexdigest().encode()
            body = body[: at + 8] + prev + body[at + 8 + 64 :]
        out.append(body)
    return out


def bundle(bodies: list[bytes]) -> bytes:
    return b"".join(len(b).to_bytes(2, "big") + b for b in bodies)


def general(*args: object) -> scanbundle.BundleScan:
    """``scan_bundle`` without the pattern path."""
    by_pattern = scanbundle._by_pattern
    scanbundle._by_pattern = lambda *a: None  # type: ignore[assignment]
    try:
        return scanbundle.scan_bundle(*args)  # type: ignore[arg-type]
    finally:
        scanbundle._by_pattern = by_pattern


EDITS = st.sampled_from(
    ["flip", "digit", "prev", "time", "seq", "swap", "duplicate", "uppercase prev", "space"]
)


@settings(max_examples=400, deadline=None)
@given(
    data=st.data(),
    edit=EDITS,
    other_every=st.sampled_from([0, 3, 40]),
    skip=st.sampled_from([0, 0, 1, 5]),
    replay=st.booleans(),
)
def test_the_pattern_path_says_what_the_general_path_says(data, edit, other_every, skip, replay):
    first = TILE_WIDTH * 3
    bodies = entries(first, TILE_WIDTH if data.draw(st.booleans(), "full") else 20, other_every)
    for _ in range(data.draw(st.integers(0, 2), label="edits")):
        i = data.draw(st.integers(0, len(bodies) - 1), label="entry")
        b = bytearray(bodies[i])
        if edit == "flip":
            at = data.draw(st.integers(0, len(b) - 1), label="byte")
            b[at] = data.draw(st.integers(0, 255).filter(lambda x, old=b[at]: x != old))
        elif edit == "digit":  # a digit for another: still the pattern's shape
            digits = [k for k, c in enumerate(b) if 48 <= c <= 57]
            at = data.draw(st.sampled_from(digits), label="digit")
            b[at] = 48 + (b[at] - 47) % 10
        elif edit == "prev":
            at = b.index(b'"prev":"') + 8 + data.draw(st.integers(0, 63), label="hex")
            b[at] = data.draw(st.sampled_from(b'0a"G\\\x00'))
        elif edit == "time":
            at = b.index(b'"time":"') + 8 + data.draw(st.integers(0, 26), label="time")
            b[at] = data.draw(st.sampled_from(b'0:-TZ."x'))
        elif edit == "seq":
            at = b.index(b'"seq":') + 6
            b[at : at + 1] = data.draw(st.sampled_from([b"9", b"09", b"-", b"1.", b" "]))
        elif edit == "swap" and i + 1 < len(bodies):
            bodies[i], bodies[i + 1] = bodies[i + 1], bodies[i]
            continue
        elif edit == "duplicate":
            j = data.draw(st.integers(0, len(bodies) - 1), label="copy")
            bodies[i] = bodies[j]
            continue
        elif edit == "uppercase prev":
            at = b.index(b'"prev":"') + 8
            b[at : at + 64] = bytes(b[at : at + 64]).upper()
        elif edit == "space":
            at = data.draw(st.integers(1, len(b) - 1), label="where")
            b[at:at] = b" "
        bodies[i] = bytes(b)
    if data.draw(st.booleans(), label="rechain"):
        # As a forger would: each entry after the first names the hash of the one before it,
        # so an edit is not simply caught by the next entry's prev.
        bodies = rechain(bodies)
    data_ = bundle(bodies)
    args = (first, data_, "entries", len(bodies), min(skip, len(bodies)), replay)
    assert scanbundle.scan_bundle(*args) == general(*args)


@pytest.mark.parametrize("other_every", [0, 3])
def test_a_clean_bundle_takes_the_pattern_path(other_every):
    """The path exists (this test fails if it is never taken): a clean bundle of transfers, with
    or without other entries among them, is proven without the general path."""
    bodies = entries(0, TILE_WIDTH, other_every)
    hashes = [hashlib.sha256(b).digest() for b in bodies]
    assert scanbundle._by_pattern(0, bodies, hashes, True) is not None
    scan = scanbundle.scan_bundle(0, bundle(bodies), "entries", TILE_WIDTH)
    assert scan.problem is None and scan == general(0, bundle(bodies), "entries", TILE_WIDTH)


@pytest.mark.parametrize("char", [b"G", b'"', b"A", b"\\", b"\x00"])
@pytest.mark.parametrize("skip", [0, 1])
def test_the_first_entrys_prev_is_judged_as_the_general_path_judges_it(char, skip):
    """The first entry checked names a hash nobody here can compare (the caller holds it):
    pattern path or not, the same claim comes back, or the same problem."""
    bodies = entries(0, 8, 3)
    b = bytearray(bodies[skip])
    at = b.index(b'"prev":"') + 8
    b[at : at + 1] = char
    bodies = rechain([*bodies[:skip], bytes(b), *bodies[skip + 1 :]])
    args = (0, bundle(bodies), "entries", len(bodies), skip, True)
    assert scanbundle.scan_bundle(*args) == general(*args)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"actor":"org:bench"', b'"actor":"org:b\\u0065nch"'),  # the same text, escaped
        (b'"batch":', b'"batch": '),  # whitespace
        (b'"from":2', b'"from":02'),  # not JSON at all
    ],
)
def test_a_forged_transfer_that_is_not_canonical_is_refused_with_its_chain_rebuilt(old, new):
    """An insider rewrites a transfer's bytes into another spelling of the same value and
    rebuilds the chain after it (the hashes match, as a forger would make them): the bytes are
    not RFC 8785, so the entry is the bundle's problem, whichever path looked at it."""
    bodies = entries(0, TILE_WIDTH, 40)
    i = 10
    assert old in bodies[i]
    bodies[i] = bodies[i].replace(old, new, 1)
    bodies = rechain(bodies)
    scan = scanbundle.scan_bundle(0, bundle(bodies), "entries", TILE_WIDTH)
    assert scan.problem is not None and scan.problem[0] == i and scan.problem[1] == "entry"


@pytest.mark.parametrize("spelling", [b',"v":1.0}', b',"v":true}'])
def test_another_spelling_of_the_version_is_refused(spelling):
    """orjson writes an integral float as 1.0 (RFC 8785: 1), and true == 1 in Python: both
    passed the fast check before."""
    bodies = entries(0, TILE_WIDTH, 40)
    bodies[10] = bodies[10].replace(b',"v":1}', spelling, 1)
    scan = scanbundle.scan_bundle(0, bundle(rechain(bodies)), "entries", TILE_WIDTH)
    assert scan.problem is not None and scan.problem[0] == 10
