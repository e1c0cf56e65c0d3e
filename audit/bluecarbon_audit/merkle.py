"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing, proofs and verification.

Pure and dependency free: hashes are computed with SHA-256 from :mod:`hashlib`, and stored
nodes are read through a ``get_node(level, index)`` callable so callers decide where they live.

A node id ``(level, index)`` names the perfect subtree over the leaves
``[index * 2**level, (index + 1) * 2**level)``. Such nodes never change once complete, so they
are what a log stores; every other hash (roots, "ephemeral" right-edge nodes) is recomputed
from O(log n) of them.

The layout follows transparency-dev/merkle (``compact`` ranges for storage, the RFC 9162
algorithms for verification).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "NodeGetter",
    "NodeId",
    "ProofError",
    "aligned_node_ids",
    "consistency_node_ids",
    "consistency_proof",
    "frontier_node_ids",
    "inclusion_node_ids",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "perfect_root",
    "root_from_inclusion_proof",
    "root_of",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32

# RFC 9162 §2.1.1: MTH({}) = HASH(), the hash of the empty string.
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

# RFC 9162 §2.1.1: domain separation prefixes for leaves and interior nodes.
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

NodeId = tuple[int, int]
NodeGetter = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A proof, or the sizes and hashes it is checked against, failed verification."""


def leaf_hash(data: bytes) -> bytes:
    """Return the leaf hash SHA-256(0x00 || data) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the interior node hash SHA-256(0x01 || left || right) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root_of(leaves: Sequence[bytes]) -> bytes:
    """Reference MTH over leaf hashes, recursive exactly as in RFC 9162 §2.1.1.

    Hashes every node, so it is for tests and small trees only.
    """
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


# --- Building: the right edge of a growing tree ---------------------------------------------


class Frontier:
    """The right edge of a tree of `size` leaves: the hashes of the perfect subtrees of the binary
    decomposition of size, largest (leftmost) first. Appending is O(log n) amortized O(1)."""

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise ValueError(f"tree size must be >= 0, got {size}")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a tree of size {size} has {size.bit_count()} frontier hashes, got {len(hashes)}"
            )
        self._size = size
        self._hashes = [_require_hash("frontier hash", h) for h in hashes]

    @property
    def size(self) -> int:
        """Number of leaves in the tree."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Hashes of the nodes named by ``frontier_node_ids(size)``, largest first."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf HASH. Returns every perfect node this completes, as (level, index, hash),
        starting with the leaf itself at level 0, so a caller can store them."""
        h = _require_hash("leaf hash", leaf)
        level, index = 0, self._size
        completed = [(level, index, h)]
        # Each trailing 1 bit of the old size is a perfect subtree of the same height as the
        # one just finished, immediately to its left: merge them (RFC 9162 §2.1.1).
        while index & 1:
            h = node_hash(self._hashes.pop(), h)
            level, index = level + 1, index >> 1
            completed.append((level, index, h))
        self._hashes.append(h)
        self._size += 1
        return completed

    def push(self, leaf: bytes) -> None:
        """``append`` for callers that computed ``leaf`` themselves with ``leaf_hash`` (so it
        is 32 bytes) and store nothing: no checks, no node list. A verifier's hot loop."""
        hashes, index = self._hashes, self._size
        h = leaf
        while index & 1:
            h = node_hash(hashes.pop(), h)
            index >>= 1
        hashes.append(h)
        self._size += 1

    def push_subtree(self, level: int, root: bytes) -> None:
        """Add ``2**level`` leaves at once, given the hash of the perfect subtree over them (from
        ``perfect_root``). The size must be a multiple of ``2**level``: perfect subtrees of an
        RFC 9162 tree are aligned. Like ``push``, for callers that computed ``root`` themselves.
        """
        if level < 0 or self._size & ((1 << level) - 1):
            raise ValueError(f"a level-{level} subtree cannot start at leaf {self._size}")
        hashes, index = self._hashes, self._size >> level
        h = root
        # As in ``push``, one level up: the frontier holds no subtree smaller than this one.
        while index & 1:
            h = node_hash(hashes.pop(), h)
            index >>= 1
        hashes.append(h)
        self._size += 1 << level

    def root(self) -> bytes:
        """Return the RFC 9162 §2.1.1 root of the current size (EMPTY_ROOT for 0)."""
        return _fold(self._hashes)

    def copy(self) -> Frontier:
        """Return an independent copy."""
        return Frontier(self._size, self._hashes)

    @classmethod
    def from_nodes(cls, size: int, get_node: NodeGetter) -> Frontier:
        """Load the frontier of a tree of `size` leaves from stored perfect nodes."""
        return cls(size, [_fetch(get_node, node) for node in frontier_node_ids(size)])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, hashes=[{', '.join(h.hex() for h in self._hashes)}])"


def frontier_node_ids(size: int) -> list[NodeId]:
    """Ids of the perfect subtrees that make up a tree of `size` leaves, largest first."""
    if size < 0:
        raise ValueError(f"tree size must be >= 0, got {size}")
    return _range_node_ids(0, size)


def aligned_node_ids(start: int, end: int) -> list[NodeId]:
    """The fewest perfect subtrees covering leaves [start, end), left to right: for any range
    (a "compact range"), not only a subtree's. ``Frontier.push_subtree`` takes them in order."""
    if not 0 <= start <= end:
        raise ValueError(f"[{start}, {end}) is not a range of leaves")
    nodes: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)  # aligned at start
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def perfect_root(leaves: Sequence[bytes]) -> bytes:
    """MTH of a power-of-two number of leaf hashes, one level at a time (RFC 9162 §2.1.1: every
    split of a perfect tree is in the middle)."""
    n = len(leaves)
    if n == 0 or n & (n - 1):
        raise ValueError(f"a perfect subtree has a power-of-two number of leaves, not {n}")
    sha256, level = hashlib.sha256, list(leaves)
    while len(level) > 1:
        pairs = iter(level)
        level = [
            sha256(_NODE_PREFIX + left + right).digest()
            for left, right in zip(pairs, pairs, strict=True)
        ]
    return level[0]


# --- Hashes of subtrees over stored nodes ----------------------------------------------------


def subtree_hash(start: int, end: int, get_node: NodeGetter) -> bytes:
    """MTH of leaves [start, end) from stored perfect nodes.

    The range must be a subtree of some RFC 9162 tree: 0 <= start < end and start a multiple
    of the smallest power of two >= end - start (e.g. any [0, size), or a sibling on a proof
    path). Reads only the O(log n) nodes of its decomposition.
    """
    if not _is_subtree(start, end):
        raise ValueError(f"[{start}, {end}) is not a subtree of an RFC 9162 Merkle tree")
    return _fold([_fetch(get_node, node) for node in _range_node_ids(start, end)])


# --- Inclusion proofs ------------------------------------------------------------------------


def inclusion_node_ids(index: int, size: int) -> list[NodeId]:
    """All stored nodes that ``inclusion_proof(index, size, ...)`` reads, without repeats."""
    return [node for r in _inclusion_ranges(index, size) for node in _range_node_ids(*r)]


def inclusion_proof(index: int, size: int, get_node: NodeGetter) -> list[bytes]:
    """Audit path PATH(index, D[0:size]) for leaf `index` (RFC 9162 §2.1.3.1), bottom up."""
    return [subtree_hash(start, end, get_node) for start, end in _inclusion_ranges(index, size)]


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Return the root that `proof` binds leaf hash `leaf` at `index` to (RFC 9162 §2.1.3.2)."""
    _check_hash("leaf hash", leaf)
    _check_proof(proof)
    # RFC 9162 §2.1.3.2 step 1.
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    # Steps 2-3.
    fn, sn = index, size - 1
    r = bytes(leaf)
    # Step 4.
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof is too long ({len(proof)} hashes)")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:  # Skip levels where we are the right edge (fn == sn).
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    # Step 5 (the root comparison is done by verify_inclusion).
    if sn != 0:
        raise ProofError(f"inclusion proof is too short ({len(proof)} hashes)")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf hash `leaf` is at `index` in the tree of `size` with `root`.

    Raises ProofError on any failure (RFC 9162 §2.1.3.2).
    """
    if root_from_inclusion_proof(leaf, index, size, proof) != root:
        raise ProofError(f"inclusion proof for leaf {index} does not match the root of size {size}")


# --- Consistency proofs ----------------------------------------------------------------------


def consistency_node_ids(old_size: int, new_size: int) -> list[NodeId]:
    """All stored nodes that ``consistency_proof(old_size, new_size, ...)`` reads."""
    ranges = _consistency_ranges(old_size, new_size)
    return [node for r in ranges for node in _range_node_ids(*r)]


def consistency_proof(old_size: int, new_size: int, get_node: NodeGetter) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) (RFC 9162 §2.1.4.1); empty when the sizes are equal.

    Raises ValueError for old_size > new_size, and for old_size == 0 < new_size, which
    RFC 9162 does not define and verify_consistency rejects.
    """
    ranges = _consistency_ranges(old_size, new_size)
    return [subtree_hash(start, end, get_node) for start, end in ranges]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (new_size, new_root) extends the tree (old_size, old_root).

    Raises ProofError on any failure (RFC 9162 §2.1.4.2). Equal sizes need an empty proof and
    equal roots (EMPTY_ROOT for size 0); old_size == 0 < new_size is always rejected, as the
    transparency-dev probes require: a proof from the empty tree proves nothing.
    """
    _check_proof(proof)
    if old_size < 0 or new_size < 0:
        raise ProofError(f"tree sizes must be >= 0, got {old_size} and {new_size}")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is greater than new size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError(f"sizes are equal ({old_size}) but the proof is not empty")
        if old_size == 0 and old_root != EMPTY_ROOT:  # RFC 9162 §2.1.1
            raise ProofError("root of the empty tree is not the hash of the empty string")
        if old_root != new_root:
            raise ProofError(f"sizes are equal ({old_size}) but the roots differ")
        return
    if old_size == 0:
        raise ProofError("consistency proofs from the empty tree are not defined (RFC 9162 §2.1.4)")
    # RFC 9162 §2.1.4.2 step 1.
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    # Step 2: a power-of-two old tree is itself a node on the path; its root is not sent.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Steps 3-5.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof is too long ({len(proof)} hashes)")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:  # Skip levels where we are the right edge (fn == sn).
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    # Step 7.
    if sn != 0:
        raise ProofError(f"consistency proof is too short ({len(proof)} hashes)")
    if fr != old_root:
        raise ProofError(f"consistency proof does not match the root of old size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not match the root of new size {new_size}")


# --- Helpers ---------------------------------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two smaller than n, for n > 1 (RFC 9162 §2.1.1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Hash a left-to-right decomposition of a subtree, right to left (RFC 9162 §2.1.1)."""
    if not hashes:
        return EMPTY_ROOT
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def _is_subtree(start: int, end: int) -> bool:
    """Whether [start, end) is the leaf range of a (perfect or right-edge) subtree."""
    if not 0 <= start < end:
        return False
    width = 1 << (end - start - 1).bit_length()  # smallest power of two >= end - start
    return start % width == 0


def _range_node_ids(start: int, end: int) -> list[NodeId]:
    """The perfect nodes making up subtree [start, end), largest (leftmost) first.

    One per 1 bit of the width; alignment holds because [start, end) is a subtree.
    """
    nodes: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges of the hashes in PATH(index, D[0:size]), bottom up (RFC 9162 §2.1.3.1)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    ranges = []
    start, end = 0, size
    while end - start > 1:
        mid = start + _split(end - start)
        if index < mid:  # PATH(m, D[0:k]) : MTH(D[k:n])
            ranges.append((mid, end))
            end = mid
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            ranges.append((start, mid))
            start = mid
    ranges.reverse()
    return ranges


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges of the hashes in PROOF(old_size, D[0:new_size]) (RFC 9162 §2.1.4.1)."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"need 0 <= old size <= new size, got {old_size} and {new_size}")
    if old_size == new_size:
        return []
    if old_size == 0:
        raise ValueError("consistency proofs from the empty tree are not defined (RFC 9162 §2.1.4)")
    ranges = []
    start, end, complete = 0, new_size, True  # SUBPROOF(m, D[start:end], b)
    while old_size != end:
        mid = start + _split(end - start)
        if old_size <= mid:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            ranges.append((mid, end))
            end = mid
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            ranges.append((start, mid))
            start, complete = mid, False
    if not complete:  # m == n and b is false: MTH(D[m]) itself is part of the proof.
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def _fetch(get_node: NodeGetter, node: NodeId) -> bytes:
    """Read one stored node, failing loudly if it is missing or malformed."""
    h = get_node(*node)
    if h is None:
        raise KeyError(f"stored node {node} is missing")
    return _require_hash(f"stored node {node}", h)


def _hash_problem(what: str, h: object) -> str | None:
    """Describe why `h` is not a HASH_SIZE-byte string, or return None if it is one."""
    if not isinstance(h, bytes | bytearray | memoryview):
        return f"{what} must be bytes, got {type(h).__name__}"
    if len(h) != HASH_SIZE:
        return f"{what} must be {HASH_SIZE} bytes, got {len(h)}"
    return None


def _require_hash(what: str, h: bytes) -> bytes:
    """Return `h` as bytes, or raise ValueError if it is not a HASH_SIZE-byte string."""
    if problem := _hash_problem(what, h):
        raise ValueError(problem)
    return bytes(h)


def _check_hash(what: str, h: bytes) -> None:
    """Raise ProofError if `h` is not a HASH_SIZE-byte string."""
    if problem := _hash_problem(what, h):
        raise ProofError(problem)


def _check_proof(proof: Sequence[bytes]) -> None:
    """Raise ProofError unless every proof element is a HASH_SIZE-byte string."""
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
