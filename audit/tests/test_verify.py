"""``bluecarbon-audit verify`` on tile directories, URLs and export bundles made in memory: a
valid log passes; each kind of damage is caught and named; ``--since`` continues, and catches a
rollback and a fork; witnesses and policies; the worker processes agree with the serial path."""

from __future__ import annotations

import base64
import http.server
import json
import shutil
import subprocess
import sys
import tarfile
import threading
from functools import partial
from pathlib import Path

import pytest
from ledgers import ORIGIN, ledger, project

from bluecarbon_audit import bundle
from bluecarbon_audit.cli import main
from bluecarbon_audit.cosignature import Cosigner
from bluecarbon_audit.entry import encode_entry, entry_hash
from bluecarbon_audit.note import Signer
from bluecarbon_audit.policy import Policy, PolicyError
from bluecarbon_audit.sources import open_source
from bluecarbon_audit.testing import MemoryLog
from bluecarbon_audit.tiles import TileRef
from bluecarbon_audit.verify import VerifyOptions, verify


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(["verify", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def check(source, log: MemoryLog, **options) -> object:
    policy = options.pop("policy", None) or Policy.from_flags([log.verifier_key], [], None)
    return verify(open_source(str(source)), VerifyOptions(policy=policy, **options))


@pytest.fixture
def log() -> MemoryLog:
    return ledger(700)


@pytest.fixture
def tiles(tmp_path, log) -> Path:
    log.write_tiles(tmp_path / "tiles")
    return tmp_path / "tiles"


# ---- a valid log -------------------------------------------------------------------------------


def test_a_valid_tile_directory_verifies_with_a_human_report(capsys, log, tiles):
    code, out = run(capsys, str(tiles), "--key", log.verifier_key)
    assert code == 0, out
    assert "canonical bytes (RFC 8785), seq and hash chain of 700 entries" in out
    assert "4 hash tiles and 3 entry bundles match the entries" in out
    assert "supply invariant holds" in out
    assert out.splitlines()[-1].startswith(f"OK: {ORIGIN} verified at size 700, root ")


def test_the_json_report_says_what_was_checked(capsys, log, tiles):
    code, out = run(capsys, str(tiles), "--key", log.verifier_key, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True and report["failure"] is None
    assert report["size"] == 700 and report["entries_checked"] == 700
    assert report["root"] == base64.b64encode(log.root()).decode()
    assert report["registry"]["batches"] == 2
    assert report["registry"]["issued_kg"] == 2_000_000
    retirements = sum(b'"type":"credit.retire"' in e for e in log.entries)
    assert report["records"]["retirement"] == retirements == 13
    assert report["checkpoints"][0]["keys"] == ["+".join(log.verifier_key.split("+")[:2])]


def test_without_a_pinned_key_it_refuses_and_shows_what_the_source_publishes(capsys, log, tiles):
    (tiles / "verifier-keys").write_text(log.verifier_key + "\n")
    code, out = run(capsys, str(tiles))
    assert code == 2
    assert "no log key to trust: pass --key VKEY or --policy FILE" in out
    assert log.verifier_key in out


def test_a_missing_source_is_a_usage_error(capsys, tmp_path, log):
    code, out = run(capsys, str(tmp_path / "nothing"), "--key", log.verifier_key)
    assert code == 2 and "no such directory or file" in out


# ---- damage, each named --------------------------------------------------------------------------


def failure(source, log, **options):
    report = check(source, log, **options)
    assert report.failure is not None, "the damage went unnoticed"
    return report.failure


def rewrite_bundle(tiles: Path, index: int, width: int, change) -> None:
    from bluecarbon_audit.tiles import decode_bundle, encode_bundle

    path = tiles / TileRef("entries", index, width).path
    entries = decode_bundle(path.read_bytes(), width)
    change(entries)
    path.write_bytes(encode_bundle(entries)[1])


def test_a_changed_byte_in_an_entry_is_caught_by_the_chain(log, tiles):
    def flip(entries):
        entries[40] = entries[40].replace(b'"quantity":', b'"quantity":1', 1)

    rewrite_bundle(tiles, 0, 256, flip)
    f = failure(tiles, log)
    assert f.seq == 41 and f.check == "chain"
    assert "does not match the hash of entry 40" in f.message
    assert "entry 40 was altered, or this one was" in f.message


def test_a_changed_last_entry_is_caught_by_its_leaf_in_the_tile(log, tiles):
    def flip(entries):
        entries[-1] = entries[-1].replace(b'"quantity":', b'"quantity":1', 1)

    rewrite_bundle(tiles, 2, 188, flip)
    f = failure(tiles, log)
    assert f.check == "tile" and f.seq == 699
    assert f.message == (
        "tile/0/002.p/188: hash 187 is not the leaf hash of entry 699: the tile or the "
        "entry was changed"
    )


def test_a_changed_tile_is_named(log, tiles):
    path = tiles / "tile/0/001"
    data = bytearray(path.read_bytes())
    data[32 * 7] ^= 1
    path.write_bytes(bytes(data))
    f = failure(tiles, log)
    assert f.check == "tile" and "tile/0/001: hash 7 is not the leaf hash of entry 263" in f.message


def test_a_changed_tile_above_level_0_is_named(log, tiles):
    path = tiles / "tile/1/000.p/2"
    data = bytearray(path.read_bytes())
    data[40] ^= 1
    path.write_bytes(bytes(data))
    f = failure(tiles, log)
    assert f.check == "tile"
    assert f.message.startswith("tile/1/000.p/2: hash 1 is not the hash recomputed")


def test_a_missing_or_truncated_bundle_is_named(log, tiles):
    path = tiles / "tile/entries/001"
    path.write_bytes(path.read_bytes()[:-3])
    f = failure(tiles, log)
    assert f.check == "bundle" and f.message.startswith("tile/entries/001: entry bundle ends")
    path.unlink()
    f = failure(tiles, log)
    assert f.message == "tile/entries/001 is missing (and so is tile/entries-u32/001)"


def test_a_checkpoint_by_another_key_or_for_another_log_is_refused(log, tiles, tmp_path):
    stranger = Signer.generate(ORIGIN)
    note = log.checkpoint()
    (tiles / "checkpoint").write_text(note.split("\n\n")[0] + "\n\n" + note.split("\n\n")[1])
    assert check(tiles, log).ok
    forged = log.checkpoint()
    log.signer, real = stranger, log.signer
    forged = log.checkpoint()
    log.signer = real
    (tiles / "checkpoint").write_text(forged)
    f = failure(tiles, log)
    assert f.check == "checkpoint"
    assert f.message.startswith("checkpoint at size 700: signature does not verify with a trusted")
    other = Signer.generate("other.example/log")
    policy = Policy.from_flags([other.verifier().to_string()], [], None)
    f = failure(tiles, log, policy=policy)
    assert "does not verify with a trusted key" in f.message


def test_a_signed_root_that_is_not_the_entries_root_is_caught(log, tmp_path):
    honest = log.checkpoint(700)
    log.append("credit.transfer", {"batch": 1, "from": 2, "quantity": 1, "to": 3})
    log.write_tiles(tmp_path)
    # The log signs its tree of 701 but serves a checkpoint naming a different root.
    from bluecarbon_audit.note import Checkpoint, checkpoint_sign

    lie = checkpoint_sign(Checkpoint(ORIGIN, 701, log.root(700)), log.signer)
    (tmp_path / "checkpoint").write_text(lie)
    f = failure(tmp_path, log)
    assert f.check == "tree" and f.seq == 700
    assert "root recomputed from the entries is" in f.message
    assert honest  # the honest one verifies (below)
    log.write_tiles(tmp_path / "ok", honest)
    assert check(tmp_path / "ok", log).ok


def make(entries_of) -> MemoryLog:
    log = MemoryLog(ORIGIN)
    entries_of(log)
    return log


def test_bytes_that_are_not_rfc_8785_are_refused(tmp_path):
    def build(log):
        log.append("org.register", {"organization": {"id": 1, "handle": "a", "name": "A"}})
        body = encode_entry(
            seq=1,
            prev=log.prev,
            time="2026-01-01T00:00:00.000000Z",
            type="org.register",
            actor="system:test",
            data={"organization": {"id": 2, "handle": "b", "name": "B"}},
        )
        log.append_bytes(body.replace(b'"actor":', b'"actor": ', 1))

    log = make(build)
    log.write_tiles(tmp_path)
    f = failure(tmp_path, log)
    assert f.seq == 1 and f.message == (
        "bytes are not a valid entry (bytes are not in RFC 8785 canonical form)"
    )


def test_a_wrong_seq_is_refused(tmp_path):
    def build(log):
        log.append("org.register", {"organization": {"id": 1, "handle": "a", "name": "A"}})
        body = encode_entry(
            seq=5,
            prev=log.prev,
            time="2026-01-01T00:00:00.000000Z",
            type="org.register",
            actor="system:test",
            data={"organization": {"id": 2, "handle": "b", "name": "B"}},
        )
        log.append_bytes(body)

    log = make(build)
    log.write_tiles(tmp_path)
    f = failure(tmp_path, log)
    assert f.seq == 1 and "stored at position 1 but its bytes say seq 5" in f.message


def test_an_entry_that_cannot_be_replayed_is_named(tmp_path):
    log = ledger(30)
    log.append("credit.transfer", {"batch": 1, "from": 4, "quantity": 10**9, "to": 3})
    log.write_tiles(tmp_path)
    f = failure(tmp_path, log)
    assert f.seq == 30 and f.check == "replay"
    assert f.message.startswith("cannot be replayed: account 4 has")
    assert check(tmp_path, log, replay=False).ok  # integrity alone holds


def test_an_unknown_entry_type_is_refused(tmp_path):
    log = ledger(20)
    log.append("credit.teleport", {"batch": 1})
    log.write_tiles(tmp_path)
    f = failure(tmp_path, log)
    assert f.seq == 20 and f.message == "unknown entry type 'credit.teleport'"


def test_a_u32_bundle_is_read_and_must_hold_an_entry_over_65535_bytes(tmp_path):
    log = ledger(20)
    log.append("project.register", {"project": project(2, name="x" * 70_000)})
    log.append("credit.transfer", {"batch": 1, "from": 2, "quantity": 1, "to": 3})
    stats = log.write_tiles(tmp_path)
    assert stats.u32_bundles == 1
    report = check(tmp_path, log)
    assert report.ok and report.u32_bundles == 1
    # A small bundle served in the u32 form breaks the rule of docs/ledger-format.md §8.
    small = ledger(20)
    small.write_tiles(tmp_path / "small")
    std = tmp_path / "small/tile/entries/000.p/20"
    from bluecarbon_audit.tiles import decode_bundle, encode_bundle

    u32 = encode_bundle(decode_bundle(std.read_bytes(), 20), "entries-u32")[1]
    (tmp_path / "small/tile/entries-u32/000.p").mkdir(parents=True)
    (tmp_path / "small/tile/entries-u32/000.p/20").write_bytes(u32)
    std.unlink()
    f = failure(tmp_path / "small", small)
    assert f.check == "bundle" and "holds no entry over 65,535 bytes" in f.message


# ---- --since: continue, rollback, fork -----------------------------------------------------------


def test_since_continues_from_the_saved_state_and_checks_only_new_entries(capsys, tmp_path):
    log = ledger(600)
    log.write_tiles(tmp_path / "t")
    state = tmp_path / "state.json"
    code, out = run(capsys, str(tmp_path / "t"), "--key", log.verifier_key, "--since", str(state))
    assert code == 0, out
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    for _ in range(350):
        log.append("credit.transfer", {"batch": 1, "from": 2, "quantity": 1, "to": 5})
    log.write_tiles(tmp_path / "t")
    args = [str(tmp_path / "t"), "--key", log.verifier_key, "--since", str(state), "--json"]
    code, out = run(capsys, *args)
    report = json.loads(out)
    assert code == 0, out
    assert report["start"] == 600 and report["entries_checked"] == 350
    assert report["since"] == {"size": 600, "checkpoint": 600}
    assert report["consistency_proofs"] == 1
    # Replayed across the two runs: the same state as one run from the start.
    fresh = check(tmp_path / "t", log)
    assert report["registry"] == fresh.to_json()["registry"]
    code, out = run(capsys, *args)  # nothing new
    assert code == 0 and json.loads(out)["entries_checked"] == 0


def test_since_catches_a_rollback(capsys, tmp_path):
    log = ledger(600)
    log.write_tiles(tmp_path / "t")
    state = tmp_path / "state.json"
    assert (
        run(capsys, str(tmp_path / "t"), "--key", log.verifier_key, "--since", str(state))[0] == 0
    )
    shutil.rmtree(tmp_path / "t")
    log.write_tiles(tmp_path / "t", log.checkpoint(500))
    code, out = run(capsys, str(tmp_path / "t"), "--key", log.verifier_key, "--since", str(state))
    assert code == 1
    assert (
        "FAILED: rollback: the log's latest checkpoint is of size 500, smaller than the "
        "checkpoint of size 600 verified before (state file)"
    ) in out


def test_since_catches_a_fork(capsys, tmp_path):
    log = ledger(600)
    log.write_tiles(tmp_path / "t")
    state = tmp_path / "state.json"
    assert (
        run(capsys, str(tmp_path / "t"), "--key", log.verifier_key, "--since", str(state))[0] == 0
    )
    # The same key signs another history (entry 300 on differs), now longer.
    fork = MemoryLog(ORIGIN, log.signer)
    for body in log.entries[:300]:
        fork.append_bytes(body)
    from ledgers import transfers

    transfers(fork, 400, seed=12345)
    shutil.rmtree(tmp_path / "t")
    fork.write_tiles(tmp_path / "t")
    code, out = run(capsys, str(tmp_path / "t"), "--key", log.verifier_key, "--since", str(state))
    assert code == 1
    assert (
        "FAILED: fork: the checkpoint at size 700 is not consistent with the checkpoint at "
        "size 600 verified before (state file)" in out
    )
    # Same size, another root: a fork too.
    fork2 = MemoryLog(ORIGIN, log.signer)
    for body in log.entries[:300]:
        fork2.append_bytes(body)
    transfers(fork2, 300, seed=999)
    shutil.rmtree(tmp_path / "t")
    fork2.write_tiles(tmp_path / "t")
    code, out = run(capsys, str(tmp_path / "t"), "--key", log.verifier_key, "--since", str(state))
    assert code == 1 and "fork: the log signed another tree of size 600" in out


# ---- witnesses and policies ----------------------------------------------------------------------


def cosigned(note: str, *cosigners: Cosigner) -> str:
    return note + "".join(c.cosign(note, 1_700_000_000).to_line() for c in cosigners)


def test_witness_cosignatures_and_the_quorum(capsys, tmp_path, log):
    w1, w2, w3 = (Cosigner.generate(f"witness.example/w{i}") for i in (1, 2, 3))
    keys = [w.verifier().to_string() for w in (w1, w2, w3)]
    log.write_tiles(tmp_path, cosigned(log.checkpoint(), w1, w3))
    base = [str(tmp_path), "--key", log.verifier_key]
    witnesses = [arg for k in keys for arg in ("--witness", k)]
    code, out = run(capsys, *base, *witnesses, "--quorum", "2")
    assert code == 0, out
    assert "cosigned by witness.example/w1, witness.example/w3 (quorum 2 of (" in out
    code, out = run(capsys, *base, *witnesses)  # default: all three
    assert code == 1
    assert "does not meet the witness quorum 3 of (witness.example/w1, witness.example/w2, " in out
    # A bad cosignature by a known witness fails the checkpoint.
    note = (tmp_path / "checkpoint").read_text()
    line = w2.cosign(log.checkpoint(), 5).to_line()
    bad = line[:-6] + ("A" if line[-6] != "A" else "B") + line[-5:]
    (tmp_path / "checkpoint").write_text(note + bad)
    code, out = run(capsys, *base, *witnesses, "--quorum", "1")
    assert code == 1 and "a witness cosignature is bad" in out


def test_a_tlog_policy_file(capsys, tmp_path, log):
    w1, w2 = Cosigner.generate("w1.example"), Cosigner.generate("w2.example")
    policy = tmp_path / "policy"
    policy.write_text(
        "# our pinned keys\n"
        f"log {log.verifier_key}\n"
        f"witness A {w1.verifier().to_string()} https://w1.example/\n"
        f"witness B\t{w2.verifier().to_string()}\n"
        "group both all A B\n"
        "quorum both\n"
    )
    log.write_tiles(tmp_path / "t", cosigned(log.checkpoint(), w1))
    code, out = run(capsys, str(tmp_path / "t"), "--policy", str(policy))
    assert code == 1 and "quorum 2 of (A, B): cosigned by A" in out
    log.write_tiles(tmp_path / "t2", cosigned(log.checkpoint(), w1, w2))
    code, out = run(capsys, str(tmp_path / "t2"), "--policy", str(policy))
    assert code == 0, out


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("log {k}\n", "no quorum line"),
        ("quorum X\n", "not defined on a line before"),
        ("witness none {w}\nquorum none\n", "reserved"),
        ("witness A {w}\ngroup G 2 A\nquorum G\n", "threshold"),
        ("witness A {w}\ngroup G any A A\nquorum G\n", "twice"),
        ("witness A {w}\nwitness B {w}\nquorum A\n", "listed twice"),
        ("quorum none\nquorum none\n", "a second quorum"),
        ("log {k}\x01\nquorum none\n", "control character"),
        ("frobnicate\nquorum none\n", "cannot read"),
    ],
)
def test_policy_files_are_read_as_tlog_policy_says(text, error):
    k = MemoryLog().verifier_key
    w = Cosigner.generate("w.example").verifier().to_string()
    with pytest.raises(PolicyError, match=error):
        Policy.parse(text.format(k=k, w=w))


def test_policy_groups_nest():
    ws = [Cosigner.generate(f"w{i}.example") for i in range(4)]
    text = "".join(f"witness W{i} {w.verifier().to_string()}\n" for i, w in enumerate(ws))
    text += "group X 2 W0 W1 W2\ngroup Y any W3\ngroup XY all X Y\nquorum XY\n"
    policy = Policy.parse(text)
    note = MemoryLog().checkpoint(0)
    assert not policy.witnessed(cosigned(note, ws[0], ws[1])).quorum_met
    assert policy.witnessed(cosigned(note, ws[0], ws[1], ws[3])).quorum_met
    assert not policy.witnessed(cosigned(note, ws[0], ws[3])).quorum_met


# ---- sources: URL and export bundle --------------------------------------------------------------


@pytest.fixture
def served(tmp_path, log):
    log.write_tiles(tmp_path / "www/log")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    handler.log_message = lambda *a: None  # type: ignore[assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/log"
    server.shutdown()
    server.server_close()


def test_a_log_served_over_http_verifies(capsys, served, log):
    code, out = run(capsys, served, "--key", log.verifier_key)
    assert code == 0, out
    assert f"source      log at {served}/" in out
    code, out = run(capsys, served + "/nope", "--key", log.verifier_key)
    assert code == 1 and "has no checkpoint" in out


def test_an_export_bundle_verifies_and_its_manifest_is_checked(capsys, tmp_path, log):
    notes = [log.checkpoint(300), log.checkpoint(512), log.checkpoint(700)]
    summary = log.write_bundle(tmp_path / "b.tar", notes)
    assert summary.checkpoints == 3
    code, out = run(capsys, str(tmp_path / "b.tar"), "--key", log.verifier_key, "--json")
    report = json.loads(out)
    assert code == 0, out
    assert [c["size"] for c in report["checkpoints"]] == [300, 512, 700]
    assert report["consistency_proofs"] == 2
    # sha256sum -c understands the manifest.
    with tarfile.open(tmp_path / "b.tar") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    top = tmp_path / "x" / bundle.TOP
    result = subprocess.run(
        ["sha256sum", "--quiet", "-c", bundle.MANIFEST], cwd=top, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The extracted log is a tile directory.
    assert run(capsys, str(top / "log"), "--key", log.verifier_key)[0] == 0
    # A changed checkpoint file: the manifest says so.
    (top / "checkpoints/512").write_text(notes[1].replace("\n\n", "\n\n", 1) + "— x AAAA\n")
    repack(top, tmp_path / "bad.tar")
    code, out = run(capsys, str(tmp_path / "bad.tar"), "--key", log.verifier_key)
    assert code == 1 and "checkpoints/512 does not match its SHA-256 in the manifest" in out


def repack(top: Path, out: Path) -> None:
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(top.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=f"{bundle.TOP}/{path.relative_to(top).as_posix()}")


def test_a_bundle_from_a_size_continues_a_state(capsys, tmp_path):
    log = ledger(600)
    log.write_bundle(tmp_path / "full.tar")
    state = tmp_path / "s.json"
    args = ["--key", log.verifier_key, "--since", str(state)]
    assert run(capsys, str(tmp_path / "full.tar"), *args)[0] == 0
    for _ in range(300):
        log.append("credit.transfer", {"batch": 2, "from": 2, "quantity": 1, "to": 6})
    summary = log.write_bundle(tmp_path / "delta.tar", [log.checkpoint()], from_size=600)
    assert summary.bundles == 2  # 512..767 again (now full), 768..899
    code, out = run(capsys, str(tmp_path / "delta.tar"), "--key", log.verifier_key)
    assert code == 2 and "this bundle starts at entry 600: verify it with --since" in out
    code, out = run(capsys, str(tmp_path / "delta.tar"), *args, "--json")
    assert code == 0, out
    assert json.loads(out)["entries_checked"] == 300


def test_auction_files_in_a_bundle_must_match_the_ledger(capsys, tmp_path, log):
    log.write_bundle(tmp_path / "b.tar", auctions=[{"auction": 9, "private_key": "AA=="}])
    code, out = run(capsys, str(tmp_path / "b.tar"), "--key", log.verifier_key)
    assert code == 1 and "auctions/9.json: the ledger has no auction 9" in out


# ---- the worker processes ------------------------------------------------------------------------


def test_worker_processes_give_the_same_verdicts(tmp_path):
    log = ledger(3000)
    log.write_tiles(tmp_path)
    serial = check(tmp_path, log, workers=0)
    parallel = check(tmp_path, log, workers=2)
    assert serial.ok and parallel.ok
    assert serial.to_json() == parallel.to_json()

    def flip(entries):
        entries[100] = entries[100].replace(b'"quantity":', b'"quantity":1', 1)

    rewrite_bundle(tmp_path, 6, 256, flip)
    a, b = check(tmp_path, log, workers=0), check(tmp_path, log, workers=2)
    assert a.failure is not None and str(a.failure) == str(b.failure)
    assert a.failure.seq == 6 * 256 + 101


def test_the_command_runs_as_an_installed_program(tmp_path, log):
    log.write_tiles(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bluecarbon_audit",
            "verify",
            str(tmp_path),
            "--key",
            log.verifier_key,
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("OK: ")
    assert result.stderr == ""  # no progress bar off a terminal


def test_the_hash_chain_links_across_bundles(tmp_path):
    log = ledger(600)
    # Entry 256 (the first of bundle 1) names a prev that is not entry 255's hash.
    body = log.entries[256].replace(entry_hash(log.entries[255]).hex().encode(), b"0" * 64)
    log2 = MemoryLog(ORIGIN, log.signer)
    for i, e in enumerate(log.entries):
        log2.append_bytes(body if i == 256 else e)
    log2.write_tiles(tmp_path)
    f = failure(tmp_path, log2)
    assert f.seq == 256 and f.check == "chain"


def test_a_bundle_from_a_size_needs_no_tile_of_what_the_state_holds(capsys, tmp_path):
    """At 70,000 entries the tree's left part is a level-2 tile (65,536 leaves); growing by 100
    changes no tile above level 0, so a bundle from 70,000 holds none of them: the consistency
    proof takes those nodes from the saved state's right edge."""
    log = ledger(70_000)
    log.write_bundle(tmp_path / "full.tar")
    state = tmp_path / "s.json"
    args = ["--key", log.verifier_key, "--since", str(state)]
    assert run(capsys, str(tmp_path / "full.tar"), *args)[0] == 0
    for _ in range(100):
        log.append("credit.transfer", {"batch": 2, "from": 2, "quantity": 1, "to": 6})
    log.write_bundle(tmp_path / "delta.tar", [log.checkpoint()], from_size=70_000)
    with tarfile.open(tmp_path / "delta.tar") as tar:
        tiles = [n for n in tar.getnames() if "/log/tile/" in n and "/entries" not in n]
    assert [n.split("/log/")[1] for n in tiles] == ["tile/0/273.p/212"]
    code, out = run(capsys, str(tmp_path / "delta.tar"), *args, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["entries_checked"] == 100 and report["consistency_proofs"] == 1
