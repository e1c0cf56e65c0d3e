"""One entry bundle checked at once: what ``verify`` proves of every entry, batched.

``scan_bundle`` splits a bundle (c2sp.org/tlog-tiles, ``tiles``) into its entries and proves
for each what ``decode_canonical_entry`` and the chain check prove one entry at a time:

* the bytes are exactly the RFC 8785 form of the value they parse to (every entry parsed on its
  own with orjson, then the whole list re-encoded in one call and compared with the bundle's
  entries joined by commas: as each entry parsed as one complete JSON value, equal joins mean
  equal entries; values with characters beyond the BMP take the exact path, as in ``entry``);
* a version-1 entry: exactly the seven members, ``seq``, ``prev``, ``time``, ``type``,
  ``actor`` and ``data`` of the right types;
* ``seq`` is its position, and ``prev`` is the SHA-256 of the entry before it (the first one's
  claim is returned, for the caller to compare with the hash it holds);

and computes the leaf hashes (RFC 9162 §2.1.1), the perfect root of a full bundle, the chain
hash of the last entry, and each canonical ``credit.transfer``'s (batch, from, to, quantity) for
replay. Anything the batched checks do not prove is checked again entry by entry with
``decode_canonical_entry``, which names the first entry that fails exactly as ``verify`` (and the
registry's ``ledger_verify``) words it.

Pure and picklable in and out: ``verify`` runs it in worker processes on large logs.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from collections import defaultdict
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from .entry import (
    DIGITS_TO_ZERO,
    TIME_SHAPE,
    TRANSFER_LOOSE,
    EntryError,
    decode_canonical_entry,
    has_float_token,
)
from .merkle import perfect_root
from .tiles import TILE_WIDTH, decode_bundle

__all__ = ["BundleScan", "scan_bundle"]

_MEMBERS = frozenset({"v", "seq", "prev", "time", "type", "actor", "data"})
_TRANSFER = frozenset({"batch", "from", "quantity", "to"})
_FAST = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_BEYOND_BMP = re.compile(rb"[\xf0-\xf4]")
TRANSFER, OTHER = 1, 0
_TRANSFER_MATCH = re.compile(TRANSFER_LOOSE, re.DOTALL).fullmatch
_HEX64 = re.compile(rb"[0-9a-f]{64}")


class BundleScan(NamedTuple):
    leaves: bytes  # the leaf hashes of every entry of the bundle, concatenated
    root: bytes | None  # perfect root of the leaves (full bundles)
    first_prev: bytes | None  # what entry ``skip`` claims as prev (None if it is the problem)
    before_hash: bytes | None  # SHA-256 of entry ``skip - 1`` (when skip > 0)
    last_hash: bytes  # SHA-256 of the last entry
    kinds: bytes  # per entry: TRANSFER or OTHER (empty when replay was not asked for)
    moves: bytes  # array("q"), 4 per TRANSFER, in order: batch, from, to, quantity
    others: dict[int, bytes]  # the bytes of the OTHER entries, by index in the bundle
    problem: tuple[int, str, str] | None  # (index, check, message) of the first that fails


def split_bundle(data: bytes, kind: str, width: int) -> list[bytes]:
    """The entries of a bundle (``tiles.decode_bundle``, faster for the uint16 form)."""
    if kind != "entries":
        return decode_bundle(data, width, kind)
    out: list[bytes] = []
    append, pos, end = out.append, 0, len(data)
    try:
        while pos < end:
            n = (data[pos] << 8) | data[pos + 1]
            pos += 2
            append(data[pos : pos + n])
            pos += n
    except IndexError:
        pos = end + 1
    if pos != end or len(out) != width:
        return decode_bundle(data, width, kind)  # raises, naming what is wrong
    return out


def scan_bundle(
    first_seq: int, data: bytes, kind: str, width: int, skip: int = 0, replay: bool = True
) -> BundleScan:
    """Check entries ``skip`` .. ``width - 1`` of the bundle whose first entry is ``first_seq``
    (entries before ``skip`` were verified before: only hashed). With ``replay``, also sort
    them into transfers (with their moves) and others. Raises ``BundleError`` if the bundle
    does not split into ``width`` entries."""
    entries = split_bundle(data, kind, width)
    sha256 = hashlib.sha256
    hashes = [sha256(e).digest() for e in entries]
    leaf_list = _leaf_hashes(entries)
    leaves = b"".join(leaf_list)
    root = perfect_root(leaf_list) if width == TILE_WIDTH else None
    checked = entries[skip:]
    problem = None
    by_pattern = _by_pattern(first_seq + skip, checked, hashes[skip:], replay) if checked else None
    kinds, moves, others = b"", b"", {}
    first_prev: bytes | None
    if by_pattern is not None:
        first_prev, kinds, moves = by_pattern
    else:
        objs = _batched(first_seq + skip, checked, hashes[skip:])
        if objs is not None:
            first_prev = bytes.fromhex(objs[0]["prev"]) if objs else None
        else:
            first_prev, objs, problem = _one_by_one(first_seq + skip, checked, hashes[skip:])
        if replay:
            kinds, moves = _kinds(objs)
            kinds += bytes(len(checked) - len(objs))
    if replay:
        others = {skip + i: checked[i] for i, k in enumerate(kinds) if k != TRANSFER}
        kinds = bytes(skip) + kinds
    if problem is not None:
        problem = (problem[0] + skip, problem[1], problem[2])
    return BundleScan(
        leaves=leaves,
        root=root,
        first_prev=first_prev,
        before_hash=hashes[skip - 1] if skip else None,
        last_hash=hashes[-1],
        kinds=kinds,
        moves=moves,
        others=others,
        problem=problem,
    )


_FIELDS = itemgetter("seq", "prev", "v", "time", "type", "actor", "data")
_TRANSFER_KIND: defaultdict[str, int] = defaultdict(int, {"credit.transfer": TRANSFER})
_MOVE = itemgetter("batch", "from", "to", "quantity")
_STR, _INT, _DICT = {str}, {int}, {dict}


_LEAF_STATE = hashlib.sha256(b"\x00")  # RFC 9162 §2.1.1: a leaf hash is SHA-256(0x00 || entry)


def _leaf_hashes(entries: list[bytes]) -> list[bytes]:
    """Each entry's leaf hash, from a copy of the hash state after the prefix (cheaper than
    joining the prefix to every entry and starting a hash afresh)."""
    copy, out = _LEAF_STATE.copy, []
    for body in entries:
        h = copy()
        h.update(body)
        out.append(h.digest())
    return out


def _by_pattern(
    seq: int, entries: list[bytes], hashes: list[bytes], replay: bool
) -> tuple[bytes, bytes, bytes] | None:
    """The batched proof with the transfers proven by ``TRANSFER_BYTES`` (the exact RFC 8785
    bytes of a version-1 ``credit.transfer``, as the registry's parallel verifier proves them)
    instead of parsed and re-encoded, which is most of what a transfer costs; the other entries
    by ``_canonical``. Returns the first entry's ``prev`` and, with ``replay``, each entry's
    kind and the transfers' moves (as ``_kinds``); None when anything is not proven: then the
    general path decides, exactly as it did before this one existed."""
    found = list(map(_TRANSFER_MATCH, entries))
    rest = [body for body, m in zip(entries, found, strict=True) if m is None]
    objs = _canonical(rest) if rest else []
    if objs is None:
        return None
    kinds, moves = b"", b""
    if not rest:  # all transfers: the usual bundle
        groups = [m.groups() for m in found if m is not None]
        batches, srcs, qtys, dsts, prevs, seqs, times = zip(*groups, strict=True)
        claimed = list(map(int, seqs))
        if replay:
            kinds = bytes([TRANSFER]) * len(found)
            flat = map(int, chain.from_iterable(zip(batches, srcs, dsts, qtys, strict=True)))
            moves = array("q", flat).tobytes()
    else:
        other_kinds, other_moves = _kinds(objs) if replay else (bytes(len(objs)), b"")
        others = iter(zip(objs, other_kinds, strict=True))
        other_flat = iter(array("q", other_moves))
        kinds_list: list[int] = []
        flat_list: list[int] = []
        claimed, prev_list, time_list = [], [], []
        for m in found:
            if m is None:
                o, k = next(others)
                claimed.append(o["seq"])
                prev_list.append(o["prev"].encode())
                if k:
                    flat_list += [next(other_flat) for _ in range(4)]
                kinds_list.append(k)
            else:
                batch, src, qty, dst, prev, claimed_seq, time = m.groups()
                claimed.append(int(claimed_seq))
                prev_list.append(prev)
                time_list.append(time)
                if replay:
                    flat_list += [int(batch), int(src), int(dst), int(qty)]
                kinds_list.append(TRANSFER)
        prevs, times = tuple(prev_list), tuple(time_list)
        if replay:
            kinds, moves = bytes(kinds_list), array("q", flat_list).tobytes()
    if b"".join(times).translate(DIGITS_TO_ZERO) != TIME_SHAPE * len(times):
        return None
    if claimed != list(range(seq, seq + len(entries))):
        return None
    if b"".join(prevs[1:]) != b"".join(hashes[:-1]).hex().encode():
        return None
    if not _HEX64.fullmatch(prevs[0]):
        return None  # the general path words it (or takes what it takes)
    return bytes.fromhex(prevs[0].decode()), kinds, moves


def _canonical(entries: list[bytes]) -> list[dict[str, Any]] | None:
    """Each entry parsed, if every one is the RFC 8785 form of a version-1 entry (the checks
    that do not depend on its position; ``_batched`` and ``_by_pattern`` add those); None
    otherwise."""
    try:
        objs = list(map(orjson.loads, entries))
        joined = b",".join(entries)
        if orjson.dumps(objs, option=_FAST) != b"[" + joined + b"]":
            return None
        if not joined.isascii() and _BEYOND_BMP.search(joined):
            return None
        if has_float_token(joined):
            return None
        if set(map(type, objs)) != _DICT or set(map(len, objs)) != {7}:
            return None
        seqs, prevs, vs, times, types, actors, datas = zip(*map(_FIELDS, objs), strict=True)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, KeyError):
        return None
    if (
        set(map(type, seqs)) != _INT
        or set(map(type, vs)) != _INT
        or any(v != 1 for v in vs)
        or set(map(type, prevs)) != _STR
        or set(map(len, prevs)) != {64}
        or set(map(type, times)) != _STR
        or set(map(type, types)) != _STR
        or set(map(type, actors)) != _STR
        or set(map(type, datas)) != _DICT
    ):
        return None
    return objs


def _batched(seq: int, entries: list[bytes], hashes: list[bytes]) -> list[dict[str, Any]] | None:
    """The batched proof: the parsed entries, or None when anything is not proven (then
    ``_one_by_one`` decides and words it)."""
    if not entries:
        return []
    objs = _canonical(entries)
    if objs is None:
        return None
    seqs = [o["seq"] for o in objs]
    prevs = [o["prev"] for o in objs]
    if seqs != list(range(seq, seq + len(objs))) or (
        "".join(prevs[1:]) != b"".join(hashes[:-1]).hex()
    ):
        return None
    try:
        bytes.fromhex(prevs[0])
    except ValueError:
        return None
    return objs


def _kinds(objs: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    """TRANSFER for each ``credit.transfer`` with exactly its four integer members (what the
    registry's replay applies by ``RegistryState.transfers``), OTHER for everything else; and
    the (batch, from, to, quantity) of the transfers, in order (4 per TRANSFER)."""
    kinds = bytes(map(_TRANSFER_KIND.__getitem__, [o["type"] for o in objs]))
    datas = [o["data"] for o, k in zip(objs, kinds, strict=True) if k]
    try:
        flat = list(chain.from_iterable(map(_MOVE, datas)))
    except (KeyError, TypeError):
        flat = []
    if len(flat) == 4 * len(datas) and (
        not datas or (set(map(len, datas)) == {4} and set(map(type, flat)) == _INT)
    ):
        return kinds, array("q", flat).tobytes()
    # Some transfer is not of the usual shape: it goes to the general path. One by one.
    marks = bytearray(len(objs))
    moves: array[int] = array("q")
    for i, o in enumerate(objs):
        if o["type"] != "credit.transfer":
            continue
        d = o["data"]
        if type(d) is not dict or d.keys() != _TRANSFER:
            continue
        batch, src, dst, qty = d["batch"], d["from"], d["to"], d["quantity"]
        if type(batch) is int and type(src) is int and type(dst) is int and type(qty) is int:
            marks[i] = TRANSFER
            moves.extend((batch, src, dst, qty))
    return bytes(marks), moves.tobytes()


def _one_by_one(
    seq: int, entries: list[bytes], hashes: list[bytes]
) -> tuple[bytes | None, list[dict[str, Any]], tuple[int, str, str] | None]:
    """Entry by entry, as ``verify`` words it; stops at the first entry that fails."""
    objs: list[dict[str, Any]] = []
    first_prev = None
    problem = None
    for i, body in enumerate(entries):
        try:
            entry = decode_canonical_entry(body)
        except EntryError as exc:
            problem = (i, "entry", f"bytes are not a valid entry ({exc})")
            break
        if entry.seq != seq + i:
            problem = (
                i,
                "chain",
                f"stored at position {seq + i} but its bytes say seq {entry.seq} "
                "(entries reordered or swapped)",
            )
            break
        if i == 0:
            first_prev = entry.prev
        elif entry.prev != hashes[i - 1]:
            problem = (i, "chain", chain_message(seq + i, entry.prev.hex(), hashes[i - 1]))
            break
        objs.append(orjson.loads(body))
    return first_prev, objs, problem


def chain_message(seq: int, claimed_prev: str, prev: bytes) -> str:
    """The words of a broken link (those of the registry's ``ledger_verify``)."""
    blame = seq - 1 if seq else seq
    return (
        f"prev {claimed_prev} does not match the hash of entry {seq - 1} "
        f"({prev.hex()}): entry {blame} was altered, or this one was"
    )
