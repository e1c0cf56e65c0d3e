"""Tests for bluecarbon_audit.merkle (RFC 9162 Merkle trees). Pure Python: no Django needed.

1. The official transparency-dev probes in shared/vectors/rfc9162 beside the repository's
   clone (or $BLUECARBON_VECTORS, the directory holding inclusion/ and consistency/).
2. The transparency-dev reference tree of 8 leaves: its published roots, nodes and proofs.
3. Hypothesis properties against the recursive RFC 9162 definitions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluecarbon_audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    Frontier,
    NodeId,
    ProofError,
    aligned_node_ids,
    consistency_node_ids,
    consistency_proof,
    frontier_node_ids,
    inclusion_node_ids,
    inclusion_proof,
    leaf_hash,
    node_hash,
    perfect_root,
    root_from_inclusion_proof,
    root_of,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

# --- 1. Official probes ----------------------------------------------------------------------

VECTORS = Path(
    os.environ.get("BLUECARBON_VECTORS")
    or Path(__file__).resolve().parents[3] / "shared" / "vectors" / "rfc9162"
)
# Exact counts, so a missing or half-copied vectors directory fails instead of passing vacuously.
EXPECTED_PROBES = {"inclusion": 98, "consistency": 98}


def _probe_files(kind: str) -> list[Path]:
    directory = VECTORS / kind
    return sorted(directory.rglob("*.json")) if directory.is_dir() else []


def _probe_params(kind: str) -> list[object]:
    files = _probe_files(kind)
    if not files:  # An empty parametrize would be skipped; make it fail instead.
        return [pytest.param(None, id=f"{kind}-MISSING")]
    return [pytest.param(p, id=p.relative_to(VECTORS).as_posix()) for p in files]


def _load_probe(path: Path | None) -> dict:
    assert path is not None, f"no probes found under {VECTORS} (set BLUECARBON_VECTORS?)"
    probe = json.loads(path.read_text())
    assert isinstance(probe["wantErr"], bool)
    return probe


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _b64_proof(values: list[str] | None) -> list[bytes]:
    return [_b64(v) for v in values or []]  # Go marshals a nil proof as null.


@pytest.mark.parametrize("kind", sorted(EXPECTED_PROBES))
def test_probe_directory_is_complete(kind: str) -> None:
    assert VECTORS.is_dir(), f"vectors directory {VECTORS} is missing"
    files = _probe_files(kind)
    assert len(files) == EXPECTED_PROBES[kind], f"{kind}: found {len(files)} probes"
    verdicts = [json.loads(p.read_text())["wantErr"] for p in files]
    assert verdicts.count(False) >= 6 and verdicts.count(True) >= 80


@pytest.mark.parametrize("path", _probe_params("inclusion"))
def test_inclusion_probe(path: Path | None) -> None:
    probe = _load_probe(path)
    leaf, index, size = _b64(probe["leafHash"]), probe["leafIdx"], probe["treeSize"]
    root, proof = _b64(probe["root"]), _b64_proof(probe["proof"])
    if probe["wantErr"]:
        with pytest.raises(ProofError) as excinfo:
            verify_inclusion(leaf, index, size, proof, root)
        assert str(excinfo.value)
    else:
        verify_inclusion(leaf, index, size, proof, root)
        assert root_from_inclusion_proof(leaf, index, size, proof) == root


@pytest.mark.parametrize("path", _probe_params("consistency"))
def test_consistency_probe(path: Path | None) -> None:
    probe = _load_probe(path)
    size1, size2 = probe["size1"], probe["size2"]
    root1, root2 = _b64(probe["root1"]), _b64(probe["root2"])
    proof = _b64_proof(probe["proof"])
    if probe["wantErr"]:
        with pytest.raises(ProofError) as excinfo:
            verify_consistency(size1, size2, root1, root2, proof)
        assert str(excinfo.value)
    else:
        verify_consistency(size1, size2, root1, root2, proof)


# --- 2. The transparency-dev reference tree (testonly/constants.go) --------------------------

REFERENCE_INPUTS = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
REFERENCE_ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]
# Every perfect node of the 8-leaf tree, by level then index.
REFERENCE_NODES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
REFERENCE_NODE_MAP = {
    (level, index): bytes.fromhex(h)
    for level, row in enumerate(REFERENCE_NODES)
    for index, h in enumerate(row)
}
# Frontier (compact range) of each size 0..8, as (level, index) into REFERENCE_NODES.
REFERENCE_FRONTIERS: list[list[NodeId]] = [
    [],
    [(0, 0)],
    [(1, 0)],
    [(1, 0), (0, 2)],
    [(2, 0)],
    [(2, 0), (0, 4)],
    [(2, 0), (1, 2)],
    [(2, 0), (1, 2), (0, 6)],
    [(3, 0)],
]
# (index, size) -> audit path, and (size1, size2) -> consistency proof, from the
# transparency-dev probe generator (the happy paths of the probes above).
REFERENCE_INCLUSION_PROOFS: dict[tuple[int, int], list[str]] = {
    (0, 1): [],
    (0, 8): ["96a296d2", "5f083f0a", "6b47aaf2"],
    (5, 8): ["bc1a0643", "ca854ea1", "d37ee418"],
    (2, 3): ["fac54203"],
    (1, 5): ["6e340b9c", "5f083f0a", "bc1a0643"],
}
REFERENCE_CONSISTENCY_PROOFS: dict[tuple[int, int], list[str]] = {
    (1, 1): [],
    (1, 8): ["96a296d2", "5f083f0a", "6b47aaf2"],
    (6, 8): ["0ebc5d34", "ca854ea1", "d37ee418"],
    (2, 5): ["5f083f0a", "bc1a0643"],
    (6, 7): ["0ebc5d34", "b08693ec", "d37ee418"],
}


def _reference_node(prefix: str) -> bytes:
    (match,) = [h for h in REFERENCE_NODE_MAP.values() if h.hex().startswith(prefix)]
    return match


def test_hash_primitives() -> None:
    assert HASH_SIZE == 32
    assert EMPTY_ROOT == REFERENCE_ROOTS[0] == hashlib.sha256().digest()
    assert leaf_hash(b"") == REFERENCE_ROOTS[1]
    left, right = REFERENCE_NODE_MAP[(0, 0)], REFERENCE_NODE_MAP[(0, 1)]
    assert node_hash(left, right) == REFERENCE_NODE_MAP[(1, 0)]
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    # Domain separation: a leaf can never pose as an interior node.
    assert leaf_hash(left + right) != node_hash(left, right)
    assert issubclass(ProofError, ValueError)


@pytest.mark.parametrize("size", range(len(REFERENCE_ROOTS)))
def test_reference_roots(size: int) -> None:
    leaves = [leaf_hash(x) for x in REFERENCE_INPUTS[:size]]
    assert root_of(leaves) == REFERENCE_ROOTS[size]
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    assert frontier.size == size
    assert frontier.root() == REFERENCE_ROOTS[size]
    assert frontier_node_ids(size) == REFERENCE_FRONTIERS[size]
    assert frontier.hashes == tuple(REFERENCE_NODE_MAP[n] for n in REFERENCE_FRONTIERS[size])
    get = _store(REFERENCE_NODE_MAP)
    assert Frontier.from_nodes(size, get) == frontier
    if size:
        assert subtree_hash(0, size, get) == REFERENCE_ROOTS[size]


def test_reference_nodes_from_append() -> None:
    frontier, stored = Frontier(), {}
    for i, data in enumerate(REFERENCE_INPUTS):
        completed = frontier.append(leaf_hash(data))
        assert completed[0] == (0, i, leaf_hash(data))
        for level, index, digest in completed:
            assert (level, index) not in stored
            stored[(level, index)] = digest
    assert stored == REFERENCE_NODE_MAP


@pytest.mark.parametrize(("index", "size"), sorted(REFERENCE_INCLUSION_PROOFS))
def test_reference_inclusion_proofs(index: int, size: int) -> None:
    expected = [_reference_node(p) for p in REFERENCE_INCLUSION_PROOFS[(index, size)]]
    proof = inclusion_proof(index, size, _store(REFERENCE_NODE_MAP))
    assert proof == expected
    leaf = leaf_hash(REFERENCE_INPUTS[index])
    verify_inclusion(leaf, index, size, proof, REFERENCE_ROOTS[size])


@pytest.mark.parametrize(("size1", "size2"), sorted(REFERENCE_CONSISTENCY_PROOFS))
def test_reference_consistency_proofs(size1: int, size2: int) -> None:
    expected = [_reference_node(p) for p in REFERENCE_CONSISTENCY_PROOFS[(size1, size2)]]
    proof = consistency_proof(size1, size2, _store(REFERENCE_NODE_MAP))
    assert proof == expected
    verify_consistency(size1, size2, REFERENCE_ROOTS[size1], REFERENCE_ROOTS[size2], proof)


# --- Helpers: a node store that checks what it is asked for, and the RFC definitions --------


class _Store:
    """get_node over a dict that records calls and rejects ids it was not told about."""

    def __init__(self, nodes: dict[NodeId, bytes]) -> None:
        self.nodes = nodes
        self.allowed: set[NodeId] | None = None
        self.calls: list[NodeId] = []

    def only(self, ids: list[NodeId]) -> _Store:
        assert len(ids) == len(set(ids)), f"repeated node ids: {ids}"
        self.allowed, self.calls = set(ids), []
        return self

    def __call__(self, level: int, index: int) -> bytes:
        node = (level, index)
        assert self.allowed is None or node in self.allowed, f"get_node{node} not announced"
        self.calls.append(node)
        return self.nodes[node]


def _store(nodes: dict[NodeId, bytes]) -> _Store:
    return _Store(nodes)


def _k(n: int) -> int:
    """RFC 9162 §2.1.1: the largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) exactly as written in RFC 9162 §2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*_ref_path(m, leaves[:k]), root_of(leaves[k:])]
    return [*_ref_path(m - k, leaves[k:]), root_of(leaves[:k])]


def _ref_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) exactly as written in RFC 9162 §2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if b else [root_of(leaves)]
    k = _k(n)
    if m <= k:
        return [*_ref_subproof(m, leaves[:k], b), root_of(leaves[k:])]
    return [*_ref_subproof(m - k, leaves[k:], False), root_of(leaves[:k])]


def _leaves(size: int, salt: bytes) -> list[bytes]:
    """`size` distinct leaf hashes."""
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(size)]


def _build(leaves: list[bytes]) -> tuple[dict[NodeId, bytes], list[bytes]]:
    """Append all leaves; return the stored nodes and the root at every size 0..n."""
    frontier, nodes, roots = Frontier(), {}, [EMPTY_ROOT]
    for leaf in leaves:
        for level, index, digest in frontier.append(leaf):
            nodes[(level, index)] = digest
        roots.append(frontier.root())
    return nodes, roots


def _prove_inclusion(store: _Store, index: int, size: int) -> list[bytes]:
    ids = inclusion_node_ids(index, size)
    proof = inclusion_proof(index, size, store.only(ids))
    assert set(store.calls) == set(ids)  # Exactly the announced nodes: no more, no fewer.
    assert len(ids) <= 2 * size.bit_length()  # O(log n), never the whole log.
    return proof


def _prove_consistency(store: _Store, old_size: int, new_size: int) -> list[bytes]:
    ids = consistency_node_ids(old_size, new_size)
    proof = consistency_proof(old_size, new_size, store.only(ids))
    assert set(store.calls) == set(ids)
    assert len(ids) <= 2 * new_size.bit_length() + 1
    return proof


# --- 3. Properties ---------------------------------------------------------------------------

sizes = st.integers(min_value=0, max_value=300)
salts = st.binary(max_size=8)


@settings(max_examples=60, deadline=None)
@given(size=sizes, salt=salts)
def test_frontier_matches_reference(size: int, salt: bytes) -> None:
    leaves = _leaves(size, salt)
    frontier, nodes = Frontier(), {}
    assert frontier.root() == EMPTY_ROOT
    for n, leaf in enumerate(leaves, start=1):
        before = frontier.copy()
        completed = frontier.append(leaf)
        assert before.size == n - 1 and before != frontier  # copy() is independent
        # The leaf first, then one node per level up, each the MTH of the leaves it covers.
        assert completed[0] == (0, n - 1, leaf)
        for depth, (level, index, digest) in enumerate(completed):
            assert level == depth
            assert digest == root_of(leaves[index << level : (index + 1) << level])
            nodes[(level, index)] = digest
        assert len(completed) == 1 + ((n - 1) ^ n).bit_length() - 1
        root = frontier.root()
        assert root == root_of(leaves[:n])
        assert frontier.root() == root and frontier.size == n  # root() does not mutate
        ids = frontier_node_ids(n)
        assert frontier.hashes == tuple(nodes[i] for i in ids)
        store = _store(nodes)
        assert Frontier.from_nodes(n, store.only(ids)) == frontier
        assert subtree_hash(0, n, store.only(ids)) == root
        assert Frontier(n, frontier.hashes) == frontier


@settings(max_examples=100, deadline=None)
@given(size=st.integers(min_value=0, max_value=300), salt=salts, data=st.data())
def test_subtrees_pushed_at_once_give_the_same_frontier(
    size: int, salt: bytes, data: st.DataObject
) -> None:
    """The parallel verifier pushes perfect subtrees over runs of leaves, split anywhere."""
    leaves = _leaves(size, salt)
    cuts = sorted(data.draw(st.sets(st.integers(0, size)), label="cuts") | {0, size})
    one_by_one, at_once = Frontier(), Frontier()
    for start, end in pairwise(cuts):
        covered = start
        for level, index in aligned_node_ids(start, end):
            assert index << level == covered  # left to right, no gaps
            subtree = leaves[covered : covered + (1 << level)]
            assert perfect_root(subtree) == root_of(subtree)
            at_once.push_subtree(level, perfect_root(subtree))
            covered += 1 << level
        assert covered == end
        for leaf in leaves[start:end]:
            one_by_one.push(leaf)
        assert at_once == one_by_one
        assert at_once.root() == root_of(leaves[:end])
    # Each range needs at most two subtrees per level.
    assert all(len(aligned_node_ids(a, b)) <= 2 * b.bit_length() for a, b in pairwise(cuts))


def test_misaligned_subtrees_and_bad_ranges_are_refused() -> None:
    h = leaf_hash(b"")
    frontier = Frontier()
    frontier.push(h)
    with pytest.raises(ValueError):
        frontier.push_subtree(1, h)  # a two-leaf subtree cannot start at leaf 1
    with pytest.raises(ValueError):
        frontier.push_subtree(-1, h)
    for n in (0, 3, 6):
        with pytest.raises(ValueError):
            perfect_root([h] * n)
    for start, end in [(3, 2), (-1, 0)]:
        with pytest.raises(ValueError):
            aligned_node_ids(start, end)
    assert aligned_node_ids(5, 5) == []
    assert aligned_node_ids(5, 12) == [(0, 5), (1, 3), (2, 2)]


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=1, max_value=300), salt=salts, data=st.data())
def test_every_proof_verifies(size: int, salt: bytes, data: st.DataObject) -> None:
    leaves = _leaves(size, salt)
    nodes, roots = _build(leaves)
    store = _store(nodes)
    for index in range(size):
        proof = _prove_inclusion(store, index, size)
        verify_inclusion(leaves[index], index, size, proof, roots[size])
    for old_size in range(1, size + 1):
        proof = _prove_consistency(store, old_size, size)
        verify_consistency(old_size, size, roots[old_size], roots[size], proof)
    # Byte for byte what the recursive RFC definitions give.
    index = data.draw(st.integers(0, size - 1), label="index")
    assert _prove_inclusion(store, index, size) == _ref_path(index, leaves)
    old_size = data.draw(st.integers(1, size), label="old_size")
    expected = _ref_subproof(old_size, leaves, True)
    assert _prove_consistency(store, old_size, size) == expected


@settings(max_examples=100, deadline=None)
@given(data=st.lists(st.binary(max_size=3), max_size=40))
def test_proofs_verify_with_repeated_leaves(data: list[bytes]) -> None:
    # Small inputs make duplicate leaves (and identical subtrees) common.
    leaves = [leaf_hash(d) for d in data]
    nodes, roots = _build(leaves)
    assert roots[-1] == root_of(leaves)
    store, size = _store(nodes), len(leaves)
    for index in range(size):
        proof = _prove_inclusion(store, index, size)
        assert proof == _ref_path(index, leaves)
        verify_inclusion(leaves[index], index, size, proof, roots[size])
    for old_size in range(1, size + 1):
        proof = _prove_consistency(store, old_size, size)
        assert proof == _ref_subproof(old_size, leaves, True)
        verify_consistency(old_size, size, roots[old_size], roots[size], proof)


def _tampered(proof: list[bytes], data: st.DataObject) -> list[list[bytes]]:
    """Copies of `proof` with one bit flipped, one element dropped, one element added."""
    out = []
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="flip element")
        bit = data.draw(st.integers(0, 8 * HASH_SIZE - 1), label="flip bit")
        flipped = bytearray(proof[i])
        flipped[bit // 8] ^= 1 << (bit % 8)
        out.append([*proof[:i], bytes(flipped), *proof[i + 1 :]])
        out.extend([*proof[:j], *proof[j + 1 :]] for j in range(len(proof)))
    extra = data.draw(st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE), label="extra")
    out.extend([*proof[:j], extra, *proof[j:]] for j in range(len(proof) + 1))
    out.extend([*proof[:j], proof[j], *proof[j:]] for j in range(len(proof)))  # duplicated
    return out


@settings(max_examples=150, deadline=None)
@given(size=st.integers(min_value=1, max_value=300), salt=salts, data=st.data())
def test_tampered_inclusion_rejected(size: int, salt: bytes, data: st.DataObject) -> None:
    leaves = _leaves(2 * size, salt)  # The tree has `size` leaves; larger sizes are for roots.
    nodes, roots = _build(leaves)
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = _prove_inclusion(_store(nodes), index, size)
    leaf, root = leaves[index], roots[size]
    verify_inclusion(leaf, index, size, proof, root)
    for bad in _tampered(proof, data):
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, bad, root)
        if len(bad) != len(proof):  # The length alone gives it away, whatever the root.
            with pytest.raises(ProofError, match="too long" if len(bad) > len(proof) else "short"):
                root_from_inclusion_proof(leaf, index, size, bad)
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other")
    if size > 1:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, other, size, proof, root)  # wrong index
        with pytest.raises(ProofError):
            verify_inclusion(leaves[other], index, size, proof, root)  # wrong leaf
    for wrong_size in {index + 1, size - 1, size + 1, 2 * size} - {size}:
        # Against the true root of that size: the root of `size` may well pass for a bigger
        # tree's (e.g. [l1, l2] proves leaf 0 under root3 at size 3 and at size 4 alike).
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, wrong_size, proof, roots[wrong_size])
    for wrong_root in (EMPTY_ROOT, root[:-1], root + b"\x00", leaf):
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, proof, wrong_root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, size, size, proof, root)  # index out of range


@settings(max_examples=150, deadline=None)
@given(size=st.integers(min_value=2, max_value=300), salt=salts, data=st.data())
def test_tampered_consistency_rejected(size: int, salt: bytes, data: st.DataObject) -> None:
    leaves = _leaves(2 * size, salt)  # The tree has `size` leaves; larger sizes are for roots.
    nodes, roots = _build(leaves)
    old = data.draw(st.integers(1, size - 1), label="old_size")
    proof = _prove_consistency(_store(nodes), old, size)
    verify_consistency(old, size, roots[old], roots[size], proof)
    for bad in _tampered(proof, data):
        with pytest.raises(ProofError):
            verify_consistency(old, size, roots[old], roots[size], bad)
    with pytest.raises(ProofError, match="too long"):
        verify_consistency(old, size, roots[old], roots[size], [*proof, proof[-1]])
    if len(proof) > 1:
        with pytest.raises(ProofError, match="too short"):
            verify_consistency(old, size, roots[old], roots[size], proof[:-1])
    other = data.draw(st.integers(1, 2 * size).filter(lambda s: s not in (old, size)))
    if other < size:
        with pytest.raises(ProofError):
            verify_consistency(other, size, roots[other], roots[size], proof)  # wrong old size
    if other > old:
        with pytest.raises(ProofError):
            verify_consistency(old, other, roots[old], roots[other], proof)  # wrong new size
    with pytest.raises(ProofError):
        verify_consistency(old, size, roots[size], roots[old], proof)  # swapped roots
    with pytest.raises(ProofError):
        verify_consistency(old, size, roots[old - 1], roots[size], proof)
    with pytest.raises(ProofError):
        verify_consistency(old, size, roots[old], roots[size - 1], proof)
    with pytest.raises(ProofError):
        verify_consistency(size, old, roots[size], roots[old], proof)  # time travel
    with pytest.raises(ProofError):
        verify_consistency(old, size, roots[old], roots[size], [])
    with pytest.raises(ProofError):
        verify_consistency(0, size, EMPTY_ROOT, roots[size], [])


# --- Huge trees: everything stays logarithmic ------------------------------------------------


def _uniform_tree(leaf: bytes) -> _Store:
    """A consistent store for a tree of any size whose leaves are all `leaf`."""
    levels = [leaf]
    for _ in range(70):
        levels.append(node_hash(levels[-1], levels[-1]))

    class Uniform(_Store):
        def __call__(self, level: int, index: int) -> bytes:
            node = (level, index)
            assert self.allowed is None or node in self.allowed, f"get_node{node} not announced"
            self.calls.append(node)
            return levels[level]

    return Uniform({})


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=2**64 - 1),
    data=st.data(),
)
def test_huge_trees(size: int, data: st.DataObject) -> None:
    leaf = leaf_hash(b"same")
    store = _uniform_tree(leaf)
    root = subtree_hash(0, size, store.only(frontier_node_ids(size)))
    assert root == Frontier.from_nodes(size, store.only(frontier_node_ids(size))).root()
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = _prove_inclusion(store, index, size)
    assert len(proof) <= size.bit_length()
    verify_inclusion(leaf, index, size, proof, root)
    old = data.draw(st.integers(1, size), label="old_size")
    old_root = subtree_hash(0, old, store.only(frontier_node_ids(old)))
    proof = _prove_consistency(store, old, size)
    assert len(proof) <= size.bit_length() + 1
    verify_consistency(old, size, old_root, root, proof)


# --- Edge cases and argument checking ---------------------------------------------------------


def test_empty_and_equal_size_consistency() -> None:
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert consistency_node_ids(0, 0) == consistency_proof(0, 0, _store({}).only([])) == []
    assert consistency_node_ids(5, 5) == consistency_proof(5, 5, _store({}).only([])) == []
    root = REFERENCE_ROOTS[5]
    verify_consistency(5, 5, root, root, [])
    cases = [
        (0, 0, b"x" * 32, b"x" * 32, []),  # size 0 has exactly one root (RFC 9162 §2.1.1)
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (0, 1, EMPTY_ROOT, REFERENCE_ROOTS[1], []),  # nothing to prove from the empty tree
        (0, 1, EMPTY_ROOT, REFERENCE_ROOTS[1], [REFERENCE_ROOTS[1]]),
        (5, 5, root, REFERENCE_ROOTS[4], []),
        (5, 5, root, root, [root]),
        (5, 4, root, REFERENCE_ROOTS[4], []),
        (-1, 4, root, REFERENCE_ROOTS[4], []),
        (-2, -1, root, REFERENCE_ROOTS[4], []),
    ]
    for size1, size2, root1, root2, proof in cases:
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, root1, root2, proof)


def test_malformed_proof_elements_rejected() -> None:
    leaves = [leaf_hash(x) for x in REFERENCE_INPUTS]
    proof = inclusion_proof(2, 8, _store(REFERENCE_NODE_MAP))
    verify_inclusion(leaves[2], 2, 8, proof, REFERENCE_ROOTS[8])
    for bad in (proof[0][:-1], proof[0] + b"\x00", b"", proof[0].hex(), None):
        with pytest.raises(ProofError):
            verify_inclusion(leaves[2], 2, 8, [bad, *proof[1:]], REFERENCE_ROOTS[8])  # type: ignore[list-item]
        with pytest.raises(ProofError):
            verify_inclusion(bad, 2, 8, proof, REFERENCE_ROOTS[8])  # type: ignore[arg-type]
        with pytest.raises(ProofError):
            verify_consistency(6, 8, REFERENCE_ROOTS[6], REFERENCE_ROOTS[8], [bad, *proof[1:]])  # type: ignore[list-item]
    for index, size in [(0, 0), (-1, 8), (8, 8), (2**64, 2**64)]:
        with pytest.raises(ProofError):
            root_from_inclusion_proof(leaves[0], index, size, [])


def test_bad_arguments() -> None:
    h = leaf_hash(b"")
    with pytest.raises(ValueError):
        Frontier(-1)
    with pytest.raises(ValueError):
        Frontier(3, [h])  # popcount(3) == 2
    with pytest.raises(ValueError):
        Frontier(1, [h[:-1]])
    with pytest.raises(ValueError):
        Frontier().append(b"not a hash")
    with pytest.raises(KeyError):
        Frontier.from_nodes(3, _store({}))
    with pytest.raises(ValueError):
        frontier_node_ids(-1)
    for index, size in [(0, 0), (5, 5), (-1, 5)]:
        with pytest.raises(ValueError):
            inclusion_node_ids(index, size)
        with pytest.raises(ValueError):
            inclusion_proof(index, size, _store(REFERENCE_NODE_MAP))
    for old, new in [(3, 2), (0, 3), (-1, 0)]:
        with pytest.raises(ValueError):
            consistency_node_ids(old, new)
        with pytest.raises(ValueError):
            consistency_proof(old, new, _store(REFERENCE_NODE_MAP))
    # Only true subtrees: start aligned to the smallest power of two >= end - start.
    for start, end in [(1, 3), (2, 5), (4, 7 + 4), (0, 0), (3, 2), (-1, 0)]:
        with pytest.raises(ValueError):
            subtree_hash(start, end, _store(REFERENCE_NODE_MAP))
    leaves = [leaf_hash(x) for x in REFERENCE_INPUTS]
    for start, end in [(4, 7), (6, 8), (3, 4), (2, 4), (4, 8)]:
        assert subtree_hash(start, end, _store(REFERENCE_NODE_MAP)) == root_of(leaves[start:end])
