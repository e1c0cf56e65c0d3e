"""Tiles against c2sp.org/tlog-tiles: the path encoding, which tiles a tree has, their bytes
read back independently (each hash recomputed from the leaves with the RFC 9162 definition, not
with the code that wrote it), entry bundles, proofs from tiles, and incremental, atomic writes."""

from __future__ import annotations

import hashlib
import itertools
import random
import struct

import pytest
from ledgers import ORIGIN, ledger, project

from bluecarbon_audit import merkle
from bluecarbon_audit.testing import MemoryLog
from bluecarbon_audit.tiledir import TileDirError
from bluecarbon_audit.tiles import (
    ENTRIES,
    ENTRIES_U32,
    BundleError,
    TileError,
    TileNodes,
    TileRef,
    changed_tiles,
    decode_bundle,
    encode_bundle,
    encode_index,
    hash_tile_refs,
    parse_path,
    tile_width,
)

# ---- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "path"),
    [
        (0, "000"),
        (5, "005"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),  # the specification's example
        (10**9, "x001/x000/x000/000"),
    ],
)
def test_the_tile_index_is_written_in_groups_of_three_digits(index, path):
    assert encode_index(index) == path
    assert parse_path(f"tile/0/{path}") == TileRef(0, index)


def test_paths_name_the_level_the_index_and_a_partial_width():
    assert TileRef(0, 1234067).path == "tile/0/x001/x234/067"
    assert TileRef(2, 3, 17).path == "tile/2/003.p/17"
    assert TileRef(ENTRIES, 273, 112).path == "tile/entries/273.p/112"
    assert TileRef(ENTRIES_U32, 1000).path == "tile/entries-u32/x001/000"
    for ref in (TileRef(2, 3, 17), TileRef(ENTRIES, 1234067, 5), TileRef(63, 0)):
        assert parse_path(ref.path) == ref


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/5",  # three digits
        "tile/0/0005",
        "tile/0/x000/005",  # no redundant group
        "tile/0/001/005",  # all but the last start with x
        "tile/0/x001",  # the last one does not
        "tile/00/000",  # no leading zero in the level
        "tile/64/000",  # levels 0..63
        "tile/0/000.p/256",  # partial widths 1..255
        "tile/0/000.p/0",
        "tile/0/000.p/07",
        "tile/data/000",
        "tiles/0/000",
        "tile/0/000/",
    ],
)
def test_it_refuses_paths_the_specification_does_not_write(path):
    with pytest.raises(TileError):
        parse_path(path)


# ---- which tiles a tree has --------------------------------------------------------------------


def widths(size):
    out = {}
    for ref in hash_tile_refs(size):
        out.setdefault(ref.level, []).append(ref.width)
    return out


def test_a_tree_of_70000_has_the_tiles_of_the_specifications_example():
    w = widths(70_000)
    assert w[0] == [256] * 273 + [112]
    assert w[1] == [256, 17]
    assert w[2] == [1]
    assert set(w) == {0, 1, 2}


def test_a_tree_of_256_has_one_full_tile_and_a_partial_one_of_width_1_above_it():
    assert widths(256) == {0: [256], 1: [1]}
    assert widths(0) == {}
    assert widths(1) == {0: [1]}


def test_a_grown_tree_changes_only_its_right_edge():
    changed = list(changed_tiles(70_000, 70_100))
    assert changed == [TileRef(0, 273, 212)]
    changed = list(changed_tiles(65_535, 65_536))
    assert changed == [TileRef(0, 255), TileRef(1, 0), TileRef(2, 0, 1)]
    assert list(changed_tiles(500, 500)) == []


def test_tile_width_is_the_formula_of_the_specification():
    rng = random.Random(1)
    for _ in range(500):
        size = rng.randrange(0, 3 * 256**3)
        level = rng.randrange(0, 4)
        index = rng.randrange(0, 300)
        full = size // 256 ** (level + 1)
        want = 256 if index < full else (size // 256**level) % 256 if index == full else 0
        assert tile_width(level, index, size) == want


# ---- the bytes, read back independently ------------------------------------------------------


def mth(leaves, start, end):
    """RFC 9162 §2.1.1, recursively, over leaf hashes [start, end)."""
    return merkle.root_of(leaves[start:end])


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A log of 66,000 entries: full and partial tiles at levels 0 and 1, and a level 2."""
    log = ledger(66_000)
    root = tmp_path_factory.mktemp("tiles")
    log.write_tiles(root)
    return log, root


def test_every_hash_tile_is_the_specifications_subtree_hashes(big):
    log, root = big
    leaves = [merkle.leaf_hash(e) for e in log.entries]
    size = len(leaves)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    hash_tiles = [f for f in files if f.startswith("tile/") and "/entries" not in f]
    assert len(hash_tiles) == len(list(hash_tile_refs(size)))
    for path in hash_tiles:
        ref = parse_path(path)
        data = (root / path).read_bytes()
        assert len(data) == 32 * ref.width
        step = 256**ref.level
        for i in range(ref.width):
            if ref.level == 0 and i % 37:  # level 0: every 37th is enough
                continue
            first = (ref.index * 256 + i) * step
            # tlog-tiles: MTH(D[(n * 256 + i) * 256**l : (n * 256 + i + 1) * 256**l])
            assert data[32 * i : 32 * i + 32] == mth(leaves, first, first + step), (path, i)


def test_entry_bundles_are_uint16_length_prefixed_entries(big):
    log, root = big
    data = (root / "tile/entries/000").read_bytes()
    pos = 0
    for entry in log.entries[:256]:
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        assert data[pos + 2 : pos + 2 + length] == entry
        pos += 2 + length
    assert pos == len(data)
    last = (root / "tile/entries/257.p/208").read_bytes()
    assert decode_bundle(last, 208) == log.entries[257 * 256 :]
    assert (root / "checkpoint").read_text().startswith(f"{ORIGIN}\n66000\n")


def test_an_entry_over_65535_bytes_goes_in_a_u32_bundle_and_only_there(tmp_path):
    log = MemoryLog(ORIGIN)
    log.append("methodology.register", {"methodology": {"id": 1, "code": "M"}})
    big = log.append("methodology.register", {"methodology": {"id": 2, "code": "x" * 70_000}})
    log.append("methodology.register", {"methodology": {"id": 3, "code": "M3"}})
    stats = log.write_tiles(tmp_path)
    assert stats.u32_bundles == 1
    assert not (tmp_path / "tile/entries/000.p/3").exists()
    data = (tmp_path / "tile/entries-u32/000.p/3").read_bytes()
    assert data[4 + len(log.entries[0]) : 8 + len(log.entries[0])] == struct.pack(">I", len(big))
    assert decode_bundle(data, 3, ENTRIES_U32) == log.entries


def test_bundles_refuse_what_does_not_split_into_their_width():
    kind, data = encode_bundle([b"a", b"bc"])
    assert kind == ENTRIES and data == b"\x00\x01a\x00\x02bc"
    assert decode_bundle(data, 2) == [b"a", b"bc"]
    for bad, width in ((data, 3), (data[:-1], 2), (data + b"\x00", 2), (data + b"\x00\x05", 3)):
        with pytest.raises(BundleError):
            decode_bundle(bad, width)
    with pytest.raises(BundleError):
        encode_bundle([b"x" * 70_000], ENTRIES)


# ---- proofs from tiles -------------------------------------------------------------------------


def test_inclusion_and_consistency_proofs_computed_from_tiles_verify(big):
    log, root = big
    size = len(log.entries)
    nodes = TileNodes(size, lambda ref: (root / ref.path).read_bytes())
    leaves = log.levels[0]
    frontier = merkle.Frontier()
    roots = {}
    rng = random.Random(3)
    sizes = sorted({*rng.sample(range(1, size), 20), 256, 65_536, size})
    for i, leaf in enumerate(leaves):
        frontier.push(leaf)
        if i + 1 in sizes:
            roots[i + 1] = frontier.root()
    for tree in sizes:
        index = rng.randrange(tree)
        if tree == size:
            proof = merkle.inclusion_proof(index, tree, nodes)
            merkle.verify_inclusion(leaves[index], index, tree, proof, roots[tree])
    for old, new in itertools.pairwise(sizes):
        proof = merkle.consistency_proof(old, new, nodes)
        merkle.verify_consistency(old, new, roots[old], roots[new], proof)


# ---- writing -----------------------------------------------------------------------------------


def files_of(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_an_incremental_export_writes_only_what_is_new_and_ends_as_a_fresh_one(tmp_path):
    log = ledger(300)
    first = log.checkpoint(300)
    log.write_tiles(tmp_path / "inc", first)
    for _ in range(500):
        log.append("credit.transfer", {"batch": 1, "from": 2, "quantity": 1, "to": 3})
    stats = log.write_tiles(tmp_path / "inc")
    assert stats.old_size == 300 and stats.new_size == 800
    # 1 (rest of 1) + 1 full (2) + partial 3 at level 0; level 1 partial; bundles alike.
    assert stats.tiles == 4 and stats.bundles == 3
    log.write_tiles(tmp_path / "fresh", (tmp_path / "inc/checkpoint").read_text())
    inc, fresh = files_of(tmp_path / "inc"), files_of(tmp_path / "fresh")
    # The partials of tiles now full are gone; a partial of a tile still partial stays.
    assert set(inc) - set(fresh) == {"tile/1/000.p/1"}
    assert {k: v for k, v in inc.items() if k in fresh} == fresh
    assert not [p for p in (tmp_path / "inc").rglob("*.tmp")]


def test_the_export_refuses_to_roll_a_mirror_back_or_fork_it(tmp_path):
    log = ledger(300)
    log.write_tiles(tmp_path)
    with pytest.raises(TileDirError, match="roll the mirror back"):
        log.write_tiles(tmp_path, log.checkpoint(200))
    other = ledger(300, seed=99)
    other.signer = log.signer
    with pytest.raises(TileDirError, match="fork"):
        other.write_tiles(tmp_path)
    stranger = MemoryLog("other.example/log")
    stranger.append("project.register", {"project": project(1)})
    with pytest.raises(TileDirError, match="holds the log"):
        stranger.write_tiles(tmp_path)


def test_an_export_of_the_same_checkpoint_writes_nothing(tmp_path):
    log = ledger(40)
    note = log.checkpoint()
    log.write_tiles(tmp_path, note)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    stats = log.write_tiles(tmp_path, note)
    assert stats.tiles == stats.bundles == 0
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
    assert hashlib.sha256((tmp_path / "checkpoint").read_bytes()).digest()
