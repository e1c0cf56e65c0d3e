"""The log as static tiles: c2sp.org/tlog-tiles, and this log's entry bundles.

Pure: paths, widths, the byte formats of hash tiles and entry bundles, and Merkle nodes read
back from tiles. No I/O (``sources`` reads tiles, ``tiledir`` writes them).

* A hash tile ``tile/<L>/<N>[.p/<W>]`` holds up to 256 consecutive hashes of level ``8 * L``
  of the RFC 9162 tree: the *n*-th tile at level *l* holds MTH(D[(n·256 + i)·256^l :
  (n·256 + i + 1)·256^l]) for i = 0..255 (tlog-tiles §Merkle Tree). Level 0 holds leaf hashes.
* ``<N>`` is written in 3-digit groups, all but the last prefixed with ``x``: 1234067 is
  ``x001/x234/067``; ``.p/<W>`` marks a partial tile of width 1..255.
* An entry bundle ``tile/entries/<N>[.p/<W>]`` holds the entries hashed into level-0 tile N,
  each prefixed with its length as a big-endian uint16 (tlog-tiles §Log entries).

A uint16 cannot give the length of an entry over 65,535 bytes (an auction result with many
bids). The specification has no form for such a bundle, and says a log MAY serve entries in a
different format at a different URL. This log does exactly that, for those bundles only: a
bundle that holds an entry over 65,535 bytes is served at ``tile/entries-u32/<N>[.p/<W>]``,
each entry prefixed with a big-endian uint32, and not at ``tile/entries/``; every other bundle
is served at ``tile/entries/`` only. Leaves stay the entries' exact bytes, whatever their size,
so no entry and no hash changes (docs/ledger-format.md §8).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .merkle import HASH_SIZE, perfect_root

__all__ = [
    "BUNDLE_ENTRY_MAX",
    "ENTRIES",
    "ENTRIES_U32",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "BundleError",
    "TileError",
    "TileNodes",
    "TileRef",
    "bundle_kind",
    "bundle_paths",
    "changed_tiles",
    "decode_bundle",
    "decode_tile",
    "encode_bundle",
    "encode_index",
    "hash_tile_refs",
    "parse_path",
    "tile_width",
]

# tlog-tiles §Merkle Tree: a tile is a subtree of height 8, 256 hashes wide.
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_LEVEL = 63
# tlog-tiles §Log entries: "big-endian uint16 length-prefixed log entries".
BUNDLE_ENTRY_MAX = 0xFFFF
# The two kinds of entry bundle, by the path element after ``tile/``.
ENTRIES = "entries"
ENTRIES_U32 = "entries-u32"
# The u32 form's own limit: what a uint32 can say.
_U32_MAX = 0xFFFFFFFF
_PREFIX = {ENTRIES: struct.Struct(">H"), ENTRIES_U32: struct.Struct(">I")}

_GROUP = re.compile(r"[0-9]{3}")
_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")


class TileError(ValueError):
    """A tile path, or a tile's bytes, that is not what tlog-tiles specifies."""


class BundleError(TileError):
    """An entry bundle that does not split into the entries it should hold."""


@dataclass(frozen=True, order=True, slots=True)
class TileRef:
    """One tile: ``level`` is an int for hash tiles, or ``ENTRIES`` / ``ENTRIES_U32``."""

    level: int | str
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if isinstance(self.level, int):
            if not 0 <= self.level <= MAX_LEVEL:
                raise TileError(f"tile level {self.level} is not in 0..{MAX_LEVEL}")
        elif self.level not in _PREFIX:
            raise TileError(f"unknown tile kind {self.level!r}")
        if self.index < 0:
            raise TileError(f"tile index {self.index} is negative")
        if not 1 <= self.width <= TILE_WIDTH:
            raise TileError(f"tile width {self.width} is not in 1..{TILE_WIDTH}")

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]`` (tlog-tiles §Merkle Tree, §Log entries)."""
        tail = "" if self.full else f".p/{self.width}"
        return f"tile/{self.level}/{encode_index(self.index)}{tail}"

    @property
    def partial_dir(self) -> str:
        """The directory holding this tile's partial widths (``tile/<L>/<N>.p``)."""
        return f"tile/{self.level}/{encode_index(self.index)}.p"

    def with_width(self, width: int) -> TileRef:
        return TileRef(self.level, self.index, width)


def encode_index(n: int) -> str:
    """tlog-tiles §Merkle Tree: zero-padded 3-digit path elements, all but the last ``x``-
    prefixed (1234067 -> ``x001/x234/067``)."""
    if n < 0:
        raise TileError(f"tile index {n} is negative")
    groups = []
    while True:
        n, group = divmod(n, 1000)
        groups.append(f"{group:03d}")
        if not n:
            break
    groups.reverse()
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def parse_path(path: str) -> TileRef:
    """The tile a path names, strictly: exactly the path ``TileRef.path`` writes for it (no
    redundant leading groups, no leading zeros in the level or width)."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise TileError(f"not a tile path: {path!r}")
    kind = parts[1]
    level: int | str
    if kind in _PREFIX:
        level = kind
    elif _LEVEL.fullmatch(kind) and int(kind) <= MAX_LEVEL:
        level = int(kind)
    else:
        raise TileError(f"not a tile path: {path!r}")
    groups = parts[2:]
    width = TILE_WIDTH
    if len(groups) >= 2 and groups[-2].endswith(".p"):
        if not _WIDTH.fullmatch(groups[-1]) or int(groups[-1]) >= TILE_WIDTH:
            raise TileError(f"partial tile width must be 1..255: {path!r}")
        width = int(groups[-1])
        groups = [*groups[:-2], groups[-2][:-2]]
    index = 0
    for i, group in enumerate(groups):
        last = i == len(groups) - 1
        digits = group if last else group[1:]
        if (not last and not group.startswith("x")) or not _GROUP.fullmatch(digits):
            raise TileError(f"malformed tile index in {path!r}")
        index = index * 1000 + int(digits)
    ref = TileRef(level, index, width)
    if ref.path != path:
        raise TileError(f"non-canonical tile path {path!r} (the tile's path is {ref.path!r})")
    return ref


# ---- which tiles a tree has -------------------------------------------------------------------


def tile_width(level: int, index: int, size: int) -> int:
    """How many hashes tile ``index`` at ``level`` holds in a tree of ``size`` leaves: 256 when
    full, 0 when it does not exist yet (tlog-tiles §Partial Tiles: floor(s / 256**l) mod 256
    for the last one). Entry bundles have the widths of level 0."""
    count = size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, count - index * TILE_WIDTH))


def hash_tile_refs(size: int) -> Iterator[TileRef]:
    """Every hash tile of a tree of ``size`` leaves, level by level, left to right."""
    return changed_tiles(0, size)


def changed_tiles(old_size: int, new_size: int) -> Iterator[TileRef]:
    """The hash tiles of the tree of ``new_size`` that the tree of ``old_size`` did not have at
    that width: what a mirror holding the older tree must fetch (or an exporter write)."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"need 0 <= old size <= new size, got {old_size} and {new_size}")
    level = 0
    while new_size >> (TILE_HEIGHT * level):
        yield from _changed_at(level, old_size, new_size)
        level += 1


def _changed_at(level: int | str, old_size: int, new_size: int) -> Iterator[TileRef]:
    depth = 0 if isinstance(level, str) else level
    old_count, new_count = old_size >> (TILE_HEIGHT * depth), new_size >> (TILE_HEIGHT * depth)
    for index in range(old_count // TILE_WIDTH, -(-new_count // TILE_WIDTH)):
        width = tile_width(depth, index, new_size)
        if width and width != tile_width(depth, index, old_size):
            yield TileRef(level, index, width)


def bundle_paths(old_size: int, new_size: int) -> Iterator[TileRef]:
    """The entry bundles (as ``ENTRIES`` refs) of the tree of ``new_size`` that the tree of
    ``old_size`` did not have at that width. Which of the two kinds each one is depends on its
    entries (``bundle_kind``)."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"need 0 <= old size <= new size, got {old_size} and {new_size}")
    return _changed_at(ENTRIES, old_size, new_size)


# ---- hash tiles -------------------------------------------------------------------------------


def decode_tile(data: bytes, width: int) -> list[bytes]:
    """The hashes of a hash tile of ``width`` (tlog-tiles: full tiles are exactly 8,192 bytes)."""
    if len(data) != width * HASH_SIZE:
        raise TileError(
            f"a tile of width {width} is {width * HASH_SIZE} bytes, this one is {len(data)}"
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


# ---- entry bundles ----------------------------------------------------------------------------


def bundle_kind(entries: Sequence[bytes]) -> str:
    """``ENTRIES`` if every entry fits a uint16 length, else ``ENTRIES_U32``."""
    return ENTRIES if all(len(e) <= BUNDLE_ENTRY_MAX for e in entries) else ENTRIES_U32


def encode_bundle(entries: Sequence[bytes], kind: str | None = None) -> tuple[str, bytes]:
    """The bundle of ``entries`` and its kind (``bundle_kind`` unless given)."""
    kind = kind or bundle_kind(entries)
    prefix = _PREFIX[kind]
    limit = BUNDLE_ENTRY_MAX if kind == ENTRIES else _U32_MAX
    out = bytearray()
    for entry in entries:
        if len(entry) > limit:
            raise BundleError(f"an entry of {len(entry)} bytes does not fit a {kind} bundle")
        out += prefix.pack(len(entry))
        out += entry
    return kind, bytes(out)


def decode_bundle(data: bytes, width: int, kind: str = ENTRIES) -> list[bytes]:
    """Split a bundle into exactly ``width`` entries, with nothing left over."""
    prefix = _PREFIX[kind]
    size, unpack = prefix.size, prefix.unpack_from
    entries: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        if pos + size > end:
            raise BundleError(f"entry bundle ends inside the length of entry {len(entries)}")
        (length,) = unpack(data, pos)
        pos += size
        if pos + length > end:
            raise BundleError(f"entry bundle ends inside entry {len(entries)}")
        entries.append(data[pos : pos + length])
        pos += length
    if len(entries) != width:
        raise BundleError(f"entry bundle holds {len(entries)} entries, not {width}")
    return entries


# ---- Merkle nodes from tiles ------------------------------------------------------------------

TileFetch = Callable[[TileRef], bytes]


class TileNodes:
    """RFC 9162 perfect-subtree hashes of the tree of ``size`` read from its hash tiles: a
    ``merkle.NodeGetter`` for proofs. Node (k, i) is the root over 2**(k mod 8) consecutive
    hashes of the tile level k // 8 (tlog-tiles §Merkle Tree: the levels between two tile levels
    are recomputed). ``fetch`` returns a tile's bytes; tiles and nodes are cached."""

    def __init__(self, size: int, fetch: TileFetch, cache_tiles: int = 64) -> None:
        self.size = size
        self._fetch = fetch
        self._tiles: dict[TileRef, list[bytes]] = {}
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._cache_tiles = cache_tiles

    def tile(self, ref: TileRef) -> list[bytes]:
        hashes = self._tiles.get(ref)
        if hashes is None:
            hashes = decode_tile(self._fetch(ref), ref.width)
            if len(self._tiles) >= self._cache_tiles:
                self._tiles.pop(next(iter(self._tiles)))
            self._tiles[ref] = hashes
        return hashes

    def __call__(self, level: int, index: int) -> bytes:
        known = self._nodes.get((level, index))
        if known is not None:
            return known
        tile_level, sub = divmod(level, TILE_HEIGHT)
        first, count = index << sub, 1 << sub
        n = first // TILE_WIDTH
        width = tile_width(tile_level, n, self.size)
        offset = first - n * TILE_WIDTH
        if offset + count > width:
            raise KeyError(f"node ({level}, {index}) is not in the tree of size {self.size}")
        hashes = self.tile(TileRef(tile_level, n, width))[offset : offset + count]
        node = hashes[0] if count == 1 else perfect_root(hashes)
        self._nodes[(level, index)] = node
        return node
