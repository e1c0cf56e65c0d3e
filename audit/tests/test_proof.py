"""Proof files (c2sp.org/tlog-proof) and ``bluecarbon-audit proof``; ``monitor``."""

from __future__ import annotations

import base64
import json

import pytest
from ledgers import ORIGIN, ledger

from bluecarbon_audit import merkle
from bluecarbon_audit.cli import main
from bluecarbon_audit.cosignature import Cosigner
from bluecarbon_audit.policy import Policy
from bluecarbon_audit.proof import HEADER, ProofFileError, TlogProof, proof_verify
from bluecarbon_audit.testing import MemoryLog


def proof_for(log: MemoryLog, index: int, size: int | None = None, note: str | None = None):
    size = size or len(log.entries)

    def node(level: int, i: int) -> bytes:
        return merkle.perfect_root(log.levels[0][i << level : (i + 1) << level])

    return TlogProof(
        index=index,
        proof=tuple(merkle.inclusion_proof(index, size, node)),
        checkpoint=note or log.checkpoint(size),
        extra=log.entries[index],
    )


@pytest.fixture
def log() -> MemoryLog:
    return ledger(120)


def policy(log: MemoryLog, *witnesses: Cosigner, quorum: int | None = None) -> Policy:
    keys = [w.verifier().to_string() for w in witnesses]
    return Policy.from_flags([log.verifier_key], keys, quorum)


def test_the_file_is_the_specifications_format(log):
    proof = proof_for(log, 100)
    text = proof.to_text()
    lines = text.split("\n")
    assert lines[0] == HEADER == "c2sp.org/tlog-proof@v1"
    assert lines[1] == "extra " + base64.b64encode(log.entries[100]).decode()
    assert lines[2] == "index 100"
    assert lines[3 : 3 + len(proof.proof)] == [base64.b64encode(h).decode() for h in proof.proof]
    assert lines[3 + len(proof.proof)] == ""
    assert text.endswith(log.checkpoint())
    assert TlogProof.parse(text) == proof
    without = TlogProof(5, (), log.checkpoint(6)[:], None).to_text()
    assert without.startswith(f"{HEADER}\nindex 5\n\n")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("c2sp.org/tlog-proof@v2\nindex 1\n\n{cp}", "first line"),
        ("c2sp.org/tlog-proof@v1\nindex 01\n\n{cp}", "index N"),
        ("c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\n{cp}", "extra line"),
        ("c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\n{cp}", "32-byte"),
        ("c2sp.org/tlog-proof@v1\nindex 1\n", "empty line"),
        ("c2sp.org/tlog-proof@v1\nindex 1\n\n", "checkpoint is missing"),
    ],
)
def test_malformed_files_are_refused(log, text, error):
    with pytest.raises(ProofFileError, match=error):
        TlogProof.parse(text.format(cp=log.checkpoint()))


def test_a_good_proof_verifies_and_says_who_vouched(log):
    w = Cosigner.generate("witness.example/w1")
    note = log.checkpoint()
    note += w.cosign(note, 1_700_000_000).to_line()
    verified = proof_verify(proof_for(log, 100, note=note), policy=policy(log, w))
    assert verified.entry.seq == 100 and verified.entry.type == "credit.retire"
    assert verified.checkpoint.size == 120
    assert verified.log_keys == ("+".join(log.verifier_key.split("+")[:2]),)
    assert verified.witnessed.cosigners == ("witness.example/w1",)


def test_each_step_of_the_verification_fails_alone(log):
    good = proof_for(log, 100)
    changed = bytearray(good.extra or b"")
    changed[changed.index(b'"quantity":') + 11] ^= 1
    cases = [
        (TlogProof(100, good.proof, good.checkpoint, bytes(changed)), "inclusion proof"),
        (TlogProof(99, good.proof, good.checkpoint, log.entries[99]), "inclusion proof"),
        (TlogProof(101, good.proof, good.checkpoint, good.extra), "seq 100 but the proof"),
        (TlogProof(100, good.proof[:-1], good.checkpoint, good.extra), "inclusion proof"),
        (TlogProof(100, good.proof, good.checkpoint, b'{"a":1}'), "not a valid ledger entry"),
        (TlogProof(100, good.proof, good.checkpoint, None), "carries no entry"),
    ]
    for proof, error in cases:
        with pytest.raises(ProofFileError, match=error):
            proof_verify(proof, policy=policy(log))
    stranger = MemoryLog(ORIGIN)
    with pytest.raises(ProofFileError, match="does not verify with a trusted log key"):
        proof_verify(good, policy=Policy.from_flags([stranger.verifier_key], [], None))
    w = Cosigner.generate("w.example")
    with pytest.raises(ProofFileError, match="does not meet the witness quorum 1 of"):
        proof_verify(good, policy=policy(log, w))
    with pytest.raises(ProofFileError, match="not the one the proof carries"):
        proof_verify(good, policy=policy(log), entry=log.entries[3])


def test_the_command_verifies_a_file_and_an_entry_given_out_of_band(capsys, tmp_path, log):
    path = tmp_path / "entry-100.tlog-proof"
    path.write_text(proof_for(log, 100).to_text())
    assert main(["proof", str(path), "--key", log.verifier_key]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK: entry 100 is in the log {ORIGIN}\n")
    assert "certificate BCR-2026-0000000100, 0.003 t for Ningbo Coastal Energy" in out
    # Without the extra line: the entry comes from --entry.
    bare = proof_for(log, 100)
    path.write_text(TlogProof(100, bare.proof, bare.checkpoint).to_text())
    (tmp_path / "entry").write_bytes(log.entries[100])
    args = ["proof", str(path), "--key", log.verifier_key, "--entry", str(tmp_path / "entry")]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["seq"] == 100 and report["tree_size"] == 120
    (tmp_path / "entry").write_bytes(log.entries[101])
    assert main(args) == 1
    assert capsys.readouterr().out.startswith("FAILED: the entry is seq 101")


# ---- monitor ------------------------------------------------------------------------------


def test_the_monitor_follows_the_log_and_alerts_on_a_rollback(capsys, tmp_path):
    log = ledger(300)
    log.write_tiles(tmp_path / "t")
    args = [
        "monitor",
        str(tmp_path / "t"),
        "--key",
        log.verifier_key,
        "--state",
        str(tmp_path / "m.json"),
        "--once",
    ]
    assert main(args) == 0
    assert " ok: size 300 (+300), root " in capsys.readouterr().out
    log.append("credit.transfer", {"batch": 1, "from": 2, "quantity": 1, "to": 3})
    log.write_tiles(tmp_path / "t")
    assert main(args) == 0
    assert " ok: size 301 (+1), root " in capsys.readouterr().out
    (tmp_path / "t/checkpoint").write_text(log.checkpoint(256))
    assert main(args) == 1
    out = capsys.readouterr().out
    assert " ALERT (rollback): rollback: the log's latest checkpoint is of size 256" in out
