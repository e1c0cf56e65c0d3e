"""The witness, as a real process on loopback, against c2sp.org/tlog-witness §add-checkpoint.

Each answer the specification names is provoked: 200 with a cosignature that verifies, 400, 403,
404, 409 (with ``text/x.tlog.size`` and the size it holds), 422 (bad proof, fork, non-empty
proof from 0, wrong empty root), and the atomicity of check-and-update under concurrent
requests, within one process and across two processes sharing the state file.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import stat
import subprocess
import sys
import threading
from urllib.parse import urlsplit

import pytest

from bluecarbon_audit import merkle
from bluecarbon_audit.cosignature import CosignatureError, cosignatures_in, verify_cosignature
from bluecarbon_audit.note import Signer, checkpoint_open
from bluecarbon_audit.witness import (
    MAX_PROOF_LINES,
    WitnessConflictError,
    WitnessError,
    witness_add_checkpoint,
)


def post(url: str, body: bytes) -> tuple[int, str, str]:
    """POST <url>/add-checkpoint by hand: status, content type, body."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("POST", parts.path + "/add-checkpoint", body=body)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        connection.close()


def request_body(old: int, proof: list[bytes], note: str) -> bytes:
    lines = [f"old {old}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
    return ("".join(lines) + note).encode()


def add(witness, log, old: int, new: int) -> list[str]:
    return witness_add_checkpoint(witness.url, old, log.proof(old, new), log.checkpoint(new))


# --- 200 -------------------------------------------------------------------------------------


def test_it_cosigns_a_first_checkpoint_submitted_with_old_0(witness, log):
    note = log.checkpoint(5)
    lines = witness_add_checkpoint(witness.url, 0, [], note)

    assert len(lines) == 1
    assert lines[0].startswith(f"\u2014 {witness.name} ") and lines[0].endswith("\n")
    cosignature = verify_cosignature(witness.verifier_key, note, lines[0])
    assert cosignature.timestamp > 0  # §add-checkpoint: the timestamp MUST NOT be zero
    # The cosigned note still opens with the log's key: a witness line is an unknown key to it.
    checkpoint, _ = checkpoint_open(note + lines[0], [log.signer.verifier()], origin=log.origin)
    assert checkpoint.size == 5


def test_it_cosigns_a_consistent_extension_and_the_cosignature_verifies(witness, log):
    add(witness, log, 0, 5)
    note = log.checkpoint(13)
    lines = witness_add_checkpoint(witness.url, 5, log.proof(5, 13), note)

    (cosignature,) = cosignatures_in(note + "".join(lines), [witness.verifier_key])
    assert cosignature.name == witness.name
    with pytest.raises(CosignatureError):  # it is a signature of size 13, not of another tree
        verify_cosignature(witness.verifier_key, log.checkpoint(12), lines[0])


def test_it_cosigns_the_same_checkpoint_again(witness, log):
    add(witness, log, 0, 8)
    lines = witness_add_checkpoint(witness.url, 8, [], log.checkpoint(8))
    verify_cosignature(witness.verifier_key, log.checkpoint(8), lines[0])


def test_it_cosigns_a_checkpoint_with_extension_lines_and_signs_them(witness, log):
    from bluecarbon_audit.note import Checkpoint, checkpoint_sign

    body = Checkpoint(log.origin, 3, log.root(3), ("extension line",))
    note = checkpoint_sign(body, log.signer)
    (line,) = witness_add_checkpoint(witness.url, 0, [], note)
    verify_cosignature(witness.verifier_key, note, line)
    with pytest.raises(CosignatureError):
        verify_cosignature(witness.verifier_key, log.checkpoint(3), line)


def test_it_accepts_a_checkpoint_signed_by_any_trusted_key_of_the_log(witness_factory, log):
    second = Signer.generate(log.origin)
    witness = witness_factory({log.origin: [log.verifier_key, second.verifier().to_string()]})
    witness_add_checkpoint(witness.url, 0, [], log.checkpoint(4, signer=second))


def test_it_ignores_signatures_by_unknown_keys_beside_a_trusted_one(witness, log):
    stranger = Signer.generate("stranger.example")
    signature = stranger.key_hash + stranger.sign(log.body(4).encode())
    note = log.checkpoint(4) + f"\u2014 stranger.example {base64.b64encode(signature).decode()}\n"
    witness_add_checkpoint(witness.url, 0, [], note)


def test_it_serves_the_latest_cosigned_checkpoint_to_monitors(witness, log):
    parts = urlsplit(witness.url)
    path = f"/{hashlib.sha256(log.origin.encode()).hexdigest()}/checkpoint"

    def get() -> tuple[int, str]:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        answer = response.status, response.read().decode()
        connection.close()
        return answer

    assert get()[0] == 404  # §Monitor Retrieval: never cosigned -> 404
    (line,) = add(witness, log, 0, 6)
    status, text = get()
    assert status == 200
    assert text == log.checkpoint(6) + line
    assert cosignatures_in(text, [witness.verifier_key])
    checkpoint_open(text, [log.signer.verifier()], origin=log.origin)


# --- 4xx -------------------------------------------------------------------------------------


def test_an_unknown_origin_is_404(witness, toy_log):
    other = toy_log("other.example/log")
    status, _, _ = post(witness.url, request_body(0, [], other.checkpoint(1)))
    assert status == 404


def test_a_checkpoint_signed_only_by_an_unknown_key_is_403(witness, log):
    impostor = Signer.generate("someone.else")
    status, _, _ = post(witness.url, request_body(0, [], log.checkpoint(3, signer=impostor)))
    assert status == 403


def test_a_trusted_key_line_whose_signature_fails_is_403(witness, log):
    note = log.checkpoint(3)
    text, _, line = note.rpartition("\u2014 ")
    name, encoded = line.split()
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 1  # same name and key ID, bad signature
    forged = f"{text}\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"
    status, _, _ = post(witness.url, request_body(0, [], forged))
    assert status == 403
    status, _, _ = post(witness.url, request_body(0, [], forged + log.checkpoint(3)[len(text) :]))
    assert status == 403  # one bad line by the trusted key rejects the note, even beside a good one


def test_an_old_size_above_the_new_size_is_400(witness, log):
    add(witness, log, 0, 10)
    status, _, _ = post(witness.url, request_body(10, [], log.checkpoint(5)))
    assert status == 400


def test_a_rollback_to_a_smaller_tree_is_never_cosigned(witness, log):
    add(witness, log, 0, 10)
    # Claiming the right old size: the new size is below it, 400.
    with pytest.raises(WitnessError) as refused:
        witness_add_checkpoint(witness.url, 10, [], log.checkpoint(5))
    assert refused.value.status == 400
    # Claiming the smaller size as the old one: the witness holds 10, 409.
    with pytest.raises(WitnessConflictError) as conflict:
        witness_add_checkpoint(witness.url, 5, [], log.checkpoint(5))
    assert conflict.value.size == 10


def test_a_stale_old_size_is_409_with_the_size_the_witness_holds(witness, log):
    add(witness, log, 0, 7)
    status, content_type, body = post(
        witness.url, request_body(3, log.proof(3, 9), log.checkpoint(9))
    )
    assert (status, content_type, body) == (409, "text/x.tlog.size", "7\n")
    status, content_type, body = post(witness.url, request_body(0, [], log.checkpoint(9)))
    assert (status, content_type, body) == (409, "text/x.tlog.size", "7\n")


def test_a_client_that_does_not_know_the_size_learns_it_from_the_409_and_goes_on(witness, log):
    add(witness, log, 0, 7)
    with pytest.raises(WitnessConflictError) as conflict:
        witness_add_checkpoint(witness.url, 0, [], log.checkpoint(9))
    held = conflict.value.size
    witness_add_checkpoint(witness.url, held, log.proof(held, 9), log.checkpoint(9))


def test_a_fork_with_an_inconsistent_proof_is_422(witness, toy_log, log):
    add(witness, log, 0, 10)
    fork = toy_log(log.origin, signer=log.signer, fork_at=6)  # same key, another history
    status, _, _ = post(witness.url, request_body(10, fork.proof(10, 12), fork.checkpoint(12)))
    assert status == 422
    # Nor with the honest log's proof: it does not lead to the fork's root.
    status, _, _ = post(witness.url, request_body(10, log.proof(10, 12), fork.checkpoint(12)))
    assert status == 422
    # The witness still holds the honest tree.
    add(witness, log, 10, 12)


def test_a_fork_of_the_same_size_is_422(witness, toy_log, log):
    add(witness, log, 0, 10)
    fork = toy_log(log.origin, signer=log.signer, fork_at=9)
    status, _, _ = post(witness.url, request_body(10, [], fork.checkpoint(10)))
    assert status == 422


def test_a_wrong_consistency_proof_is_422(witness, log):
    add(witness, log, 0, 10)
    proof = log.proof(10, 16)
    proof[0] = bytes(32)
    status, _, _ = post(witness.url, request_body(10, proof, log.checkpoint(16)))
    assert status == 422
    status, _, _ = post(witness.url, request_body(10, proof[:-1], log.checkpoint(16)))
    assert status == 422


def test_a_proof_from_size_0_must_be_empty(witness, log):
    status, _, _ = post(witness.url, request_body(0, [bytes(32)], log.checkpoint(4)))
    assert status == 422


def test_a_checkpoint_of_size_0_must_have_the_empty_root(witness, log):
    from bluecarbon_audit.note import Checkpoint, checkpoint_sign

    wrong = checkpoint_sign(Checkpoint(log.origin, 0, bytes(32)), log.signer)
    status, _, _ = post(witness.url, request_body(0, [], wrong))
    assert status == 422
    right = checkpoint_sign(Checkpoint(log.origin, 0, merkle.EMPTY_ROOT), log.signer)
    assert witness_add_checkpoint(witness.url, 0, [], right)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 0\n",  # no empty line, no checkpoint
        b"old 01\n\n",  # leading zero
        b"old -1\n\n",
        b"new 0\n\n",
        b"old 0\nnot base64!\n\n",
        b"old 0\n" + base64.b64encode(bytes(31)) + b"\n\n",  # not a 32-byte hash
        b"old 0\n" + (base64.b64encode(bytes(32)) + b"\n") * (MAX_PROOF_LINES + 1) + b"\n",
        b"\xff\xfe",
    ],
    ids=[
        "empty",
        "no-checkpoint",
        "leading-zero",
        "negative",
        "no-old",
        "bad-b64",
        "short-hash",
        "64-proof-lines",
        "not-utf8",
    ],
)
def test_a_malformed_request_is_400(witness, log, body):
    if body.endswith(b"\n\n"):
        body += log.checkpoint(2).encode()
    status, _, _ = post(witness.url, body)
    assert status == 400


def test_a_malformed_checkpoint_is_400(witness, log):
    note = log.checkpoint(2).replace("\n2\n", "\n02\n")
    status, _, _ = post(witness.url, request_body(0, [], note))
    assert status == 400


# --- atomicity and persistence ----------------------------------------------------------------


def _race(urls: list[str], log, old: int, sizes: list[int]) -> list[object]:
    results: list[object] = [None] * len(sizes)
    barrier = threading.Barrier(len(sizes))

    def submit(i: int) -> None:
        barrier.wait()
        try:
            results[i] = witness_add_checkpoint(
                urls[i % len(urls)], old, log.proof(old, sizes[i]), log.checkpoint(sizes[i])
            )
        except WitnessError as error:
            results[i] = error

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(sizes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_submissions_from_the_same_old_size_never_both_succeed(witness, log):
    add(witness, log, 0, 4)
    for round_ in range(5):
        old = 4 + 20 * round_
        sizes = [old + 1 + i for i in range(16)]
        results = _race([witness.url], log, old, sizes)
        won = [size for size, r in zip(sizes, results, strict=True) if isinstance(r, list)]
        lost = [r for r in results if not isinstance(r, list)]
        assert len(won) == 1, results
        assert all(isinstance(r, WitnessConflictError) and r.size == won[0] for r in lost), lost
        add(witness, log, won[0], old + 20)


def test_two_processes_sharing_the_state_file_never_both_succeed(witness_factory, log):
    first = witness_factory({log.origin: log.verifier_key})
    second = witness_factory({log.origin: log.verifier_key})  # same name: same key and state
    assert first.state_file == second.state_file and first.url != second.url
    add(first, log, 0, 2)
    results = _race([first.url, second.url], log, 2, [3 + i for i in range(12)])
    assert sum(isinstance(r, list) for r in results) == 1, results


def test_the_state_survives_a_restart(witness_factory, log):
    witness = witness_factory({log.origin: log.verifier_key})
    add(witness, log, 0, 10)
    key = witness.verifier_key
    witness.stop()

    saved = json.loads(witness.state_file.read_text())
    assert saved["logs"][log.origin]["size"] == 10
    restarted = witness_factory({log.origin: log.verifier_key})
    assert restarted.verifier_key == key
    with pytest.raises(WitnessConflictError) as conflict:  # not a fresh witness: rollback refused
        witness_add_checkpoint(restarted.url, 0, [], log.checkpoint(3))
    assert conflict.value.size == 10
    lines = add(restarted, log, 10, 11)
    verify_cosignature(key, log.checkpoint(11), lines[0])


def test_a_corrupt_state_file_stops_the_witness_instead_of_starting_empty(witness_factory, log):
    witness = witness_factory({log.origin: log.verifier_key})
    add(witness, log, 0, 10)
    witness.stop()
    witness.state_file.write_text("{not json")
    with pytest.raises(RuntimeError, match="did not start"):
        witness_factory({log.origin: log.verifier_key})


def test_no_temporary_files_are_left_beside_the_state(witness, log):
    add(witness, log, 0, 3)
    add(witness, log, 3, 9)
    names = sorted(p.name for p in witness.state_file.parent.iterdir())
    assert not [n for n in names if n.endswith(".tmp")], names


# --- the command line ------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bluecarbon_audit", *args], capture_output=True, text=True
    )


def test_keygen_writes_a_private_key_file_and_prints_the_witness_verifier_key(tmp_path):
    out = tmp_path / "w.key"
    made = run_cli("witness", "keygen", "--name", "witness.example/w9", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    text = out.read_text()
    assert text.startswith("PRIVATE+KEY+witness.example/w9+")  # Go note signer key, type 0x01
    vkey = made.stdout.strip()
    assert vkey.startswith("witness.example/w9+")
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04  # a cosignature/v1 key
    shown = run_cli("witness", "verifier-key", "--key", str(out))
    assert shown.stdout.strip() == vkey
    again = run_cli("witness", "keygen", "--name", "witness.example/w9", "--out", str(out))
    assert again.returncode != 0 and out.read_text() == text  # never overwritten


def test_serve_refuses_to_start_without_a_log(tmp_path):
    run_cli("witness", "keygen", "--name", "w", "--out", str(tmp_path / "k"))
    ran = run_cli("witness", "serve", "--key", str(tmp_path / "k"), "--state", str(tmp_path / "s"))
    assert ran.returncode != 0 and "no log" in ran.stderr
