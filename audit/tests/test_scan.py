"""Tests for bluecarbon_audit.scan: what a worker proves about runs of COPY row messages. Pure.

The property that matters: every row placed in a run passes exactly the checks the serial
verifier makes of a transfer row (framing, both seqs, TRANSFER_BYTES, the link to the row
before), whatever was done to the bytes; and what a run hands back (hashes, subtrees, moves)
is what the serial loop would compute.
"""

from __future__ import annotations

import hashlib
import struct
from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from bluecarbon_audit import merkle, scan
from bluecarbon_audit.entry import TRANSFER_BYTES, ZERO_HASH, encode_entry, entry_mac

MAC_KEY = bytes(range(32))


def message(
    seq: int, body: bytes, type_: str = "credit.transfer", mac: bytes | None = None
) -> bytes:
    """One COPY BINARY row message of (seq bigint, body bytea, type varchar, mac bytea)."""
    t = type_.encode()
    mac = entry_mac(MAC_KEY, hashlib.sha256(body).digest()) if mac is None else mac
    return (
        struct.pack(">hiq", 4, 8, seq)
        + struct.pack(">i", len(body))
        + body
        + struct.pack(">i", len(t))
        + t
        + struct.pack(">i", len(mac))
        + mac
    )


def ledger(n: int, retire_every: int = 0) -> list[tuple[int, bytes, str]]:
    rows, prev = [], ZERO_HASH
    for seq in range(n):
        if retire_every and seq % retire_every == retire_every - 1:
            kind, data = "credit.retire", {"retirement": {"account": 1, "quantity": 5}}
        else:
            kind = "credit.transfer"
            data = {"batch": 1 + seq % 3, "from": 2, "quantity": 10 + seq, "to": 3 + seq % 5}
        body = encode_entry(
            seq=seq,
            prev=prev,
            time="2026-11-22T23:08:02.031273Z",
            type=kind,
            actor="org:bench",
            data=data,
        )
        rows.append((seq, body, kind))
        prev = hashlib.sha256(body).digest()
    return rows


def serial_accepts(seq: int, msg: bytes, prev: bytes | None) -> bool:
    """The serial loop's checks of a transfer row (prev None: not checked, the caller does)."""
    try:
        (stored, body, type_, mac), end = scan.parse_row(msg, 0)
    except (ValueError, struct.error, UnicodeDecodeError):
        return False
    found = TRANSFER_BYTES.fullmatch(body)
    return (
        end == len(msg)
        and stored == seq
        and type_ == "credit.transfer"
        and found is not None
        and mac == entry_mac(MAC_KEY, hashlib.sha256(body).digest())
        and int(found["seq"]) == seq
        and (prev is None or found["prev"] == prev.hex().encode())
    )


def _is_hex(text: str) -> bool:
    try:
        return len(bytes.fromhex(text)) == 32 and bytes.fromhex(text).hex() == text
    except ValueError:
        return False


def check_runs(first_seq: int, msgs: list[bytes], runs: list[scan.Run]) -> set[int]:
    """Assert every run is sound; return the seqs the runs cover."""
    starts, pos = {}, 0
    for i, m in enumerate(msgs):
        starts[pos] = i
        pos += len(m)
    covered: set[int] = set()
    for run in runs:
        offsets = array("I")
        offsets.frombytes(run.offsets)
        moves = array("q")
        moves.frombytes(run.moves)
        leaves, last = [], b""
        for k, offset in enumerate(offsets):
            i = starts[offset]  # every row of a run starts at a true message boundary
            seq = run.start + k
            assert seq == first_seq + i
            if k == 0:
                # The caller takes the run only if its first prev is the hash it holds.
                claimed = run.first_prev.decode("latin-1")
                if claimed != claimed.lower() or not _is_hex(claimed):
                    break
                prev = bytes.fromhex(claimed)
            else:
                prev = hashlib.sha256(last).digest()
            assert serial_accepts(seq, msgs[i], prev)
            (_, last, _, _), _ = scan.parse_row(msgs[i], 0)
            found = TRANSFER_BYTES.fullmatch(last)
            assert found is not None
            fields = [int(found[g]) for g in ("batch", "src", "dst", "qty")]
            assert list(moves[4 * k : 4 * k + 4]) == fields
            leaves.append(merkle.leaf_hash(last))
            covered.add(seq)
        if len(leaves) < len(offsets):
            continue  # a run the caller refuses
        assert run.end == sum(len(m) for m in msgs[: starts[offsets[-1]] + 1])
        assert run.last_hash == hashlib.sha256(last).digest()
        frontier = merkle.Frontier(run.start, [ZERO_HASH] * run.start.bit_count())
        reference = frontier.copy()
        for level, root in run.pieces:
            frontier.push_subtree(level, root)
        for leaf in leaves:
            reference.push(leaf)
        assert frontier == reference
    return covered


def test_a_clean_chunk_is_one_run_with_the_serial_results():
    rows = ledger(40)
    msgs = [message(*r) for r in rows]
    runs = scan.scan_chunk(0, b"".join(msgs), [13, 32])
    assert [(r.start, len(r.offsets) // 4) for r in runs] == [(0, 40)]
    assert check_runs(0, msgs, runs) == set(range(40))
    # The pieces end exactly at the split sizes, so each checkpoint's root can be checked.
    sizes, size = set(), 0
    for level, _ in runs[0].pieces:
        size += 1 << level
        sizes.add(size)
    assert {13, 32, 40} <= sizes


def test_other_entry_types_are_left_to_the_serial_loop():
    rows = ledger(30, retire_every=7)
    msgs = [message(*r) for r in rows]
    runs = scan.scan_chunk(0, b"".join(msgs), [])
    covered = check_runs(0, msgs, runs)
    assert covered == {seq for seq, _, kind in rows if kind == "credit.transfer"}
    assert [r.start for r in runs] == [0, 7, 14, 21, 28]


def test_a_chunk_that_starts_mid_ledger_is_numbered_from_its_first_seq():
    rows = ledger(20)[5:]
    msgs = [message(*r) for r in rows]
    runs = scan.scan_chunk(5, b"".join(msgs), [])
    assert check_runs(5, msgs, runs) == set(range(5, 20))
    assert runs[0].first_prev == hashlib.sha256(ledger(5)[-1][1]).hexdigest().encode()


def test_a_body_that_fakes_the_end_of_a_row_is_framed_by_its_lengths():
    """A body may contain the bytes that end a transfer row; the length column says where the
    row really ends, and the row is then no transfer the pattern accepts."""
    rows = ledger(6)
    fake = rows[2][1] + b"\x00\x00\x00\x0fcredit.transfer" + b"x"
    msgs = [message(*r) for r in rows]
    msgs[2] = message(2, fake)
    runs = scan.scan_chunk(0, b"".join(msgs), [])
    assert check_runs(0, msgs, runs) == {0, 1, 3, 4, 5}


def test_a_body_that_hides_a_whole_row_does_not_pass_for_two_rows():
    """Row 2's body is a valid transfer, the end of a row, and row 3 without its type column,
    which row 2's own type column completes: by the pattern alone, a chain-consistent row 3."""
    rows = ledger(6)
    hidden = message(*rows[3])[:-19]
    msgs = [message(*r) for r in rows]
    msgs[2] = message(2, rows[2][1] + b"\x00\x00\x00\x0fcredit.transfer" + hidden)
    del msgs[3]
    runs = scan.scan_chunk(0, b"".join(msgs), [])
    assert check_runs(0, msgs, runs) == {0, 1}  # rows 3.. are numbered one lower: seq mismatch


tamper_kinds = st.sampled_from(["flip", "seq column", "type", "drop", "swap", "insert"])


@settings(max_examples=300, deadline=None)
@given(data=st.data(), kind=tamper_kinds, retire_every=st.sampled_from([0, 5]))
def test_whatever_is_done_to_the_rows_every_run_is_sound(data, kind, retire_every):
    rows = ledger(24, retire_every=retire_every)
    msgs = [message(*r) for r in rows]
    for _ in range(data.draw(st.integers(1, 3), label="tamperings")):
        i = data.draw(st.integers(0, len(msgs) - 1), label="row")
        if kind == "flip":  # in the body or the type's bytes: PostgreSQL writes the lengths
            m = bytearray(msgs[i])
            (length,) = struct.unpack_from(">i", m, 14)
            type_at = 18 + length + 4
            (type_length,) = struct.unpack_from(">i", m, type_at - 4)
            mac_at = type_at + type_length + 4
            at = data.draw(
                st.integers(18, 18 + length - 1)
                | st.integers(type_at, type_at + type_length - 1)
                | st.integers(mac_at, len(m) - 1),
                label="byte",
            )
            m[at] = data.draw(st.integers(0, 255).filter(lambda b, old=m[at]: b != old))
            msgs[i] = bytes(m)
        elif kind == "seq column":
            msgs[i] = msgs[i][:6] + struct.pack(">q", i + 1) + msgs[i][14:]
        elif kind == "type":
            seq, body, _ = rows[i]
            msgs[i] = message(seq, body, "credit.retire")
        elif kind == "drop" and len(msgs) > 1:
            del msgs[i]
        elif kind == "swap" and i + 1 < len(msgs):
            msgs[i], msgs[i + 1] = msgs[i + 1], msgs[i]
        elif kind == "insert":
            msgs.insert(i, msgs[data.draw(st.integers(0, len(msgs) - 1), label="copy")])
    chunk = b"".join(msgs)
    splits = data.draw(st.lists(st.integers(1, 30), max_size=3), label="splits")
    check_runs(0, msgs, scan.scan_chunk(0, chunk, splits, mac_key=MAC_KEY))


def test_a_row_whose_mac_is_not_the_operators_is_left_to_the_serial_loop():
    rows = ledger(6)
    msgs = [message(seq, body) for seq, body, _ in rows]
    msgs[3] = message(3, rows[3][1], mac=bytes(32))  # written without the key
    chunk = b"".join(msgs)

    def covered(runs: list[scan.Run]) -> set[int]:
        return {r.start + k for r in runs for k in range(len(r.offsets) // 4)}

    assert covered(scan.scan_chunk(0, chunk, [], mac_key=MAC_KEY)) == {0, 1, 2, 4, 5}
    # Without a key (someone who cannot check MACs), the MAC is not the scan's concern.
    assert covered(scan.scan_chunk(0, chunk, [])) == {0, 1, 2, 3, 4, 5}


# ---- the leaves of every row, and the nodes a chunk holds whole -----------------------------


@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=40), st.data())
def test_range_levels_are_the_trees_own_nodes(bodies: list[bytes], data: st.DataObject) -> None:
    """Every node range_levels gives is the node of the RFC 9162 tree at that level and index,
    and it gives every node whose leaves all lie in the range (and in the tree)."""
    leaves = [merkle.leaf_hash(b) for b in bodies]
    size = data.draw(st.integers(1, len(leaves)), label="tree size")
    first = data.draw(st.integers(0, size - 1), label="first")
    stop = data.draw(st.integers(first + 1, len(leaves)), label="stop")
    got = {
        (level, lo + k): h[32 * k : 32 * k + 32]
        for level, lo, h in scan.range_levels(first, leaves[first:stop], size)
        for k in range(len(h) // 32)
    }
    want = {}
    level = 0
    while size >> level:
        for index in range(size >> level):
            a, b = index << level, (index + 1) << level
            if first <= a and b <= min(stop, size):
                want[(level, index)] = merkle.perfect_root(leaves[a:b])
        level += 1
    assert got == want


def test_every_node_under_the_chunk_comes_back_transfer_or_not() -> None:
    entries = ledger(7, retire_every=3)
    rows = [message(seq, body, kind) for seq, body, kind in entries]
    _, levels = scan.scan_chunk_leaves(0, b"".join(rows), (), MAC_KEY)
    leaves = [merkle.leaf_hash(body) for _, body, _ in entries]
    assert levels == scan.range_levels(0, leaves, 7)
    assert scan.trim_levels(levels, 5) == scan.range_levels(0, leaves, 5)
    # A row without a body (NULL): no levels (the serial loop reports that row).
    null_body = (
        struct.pack(">hiq", 4, 8, 2) + struct.pack(">i", -1) + struct.pack(">i", 2) + b"xx"
    ) + struct.pack(">i", -1)
    runs, levels = scan.scan_chunk_leaves(0, b"".join(rows[:2]) + null_body, (), MAC_KEY)
    assert levels is None
    assert [(r.start, len(r.offsets) // 4) for r in runs] == [(0, 2)]
