"""The trustee program's own parts, against a registry faked in memory (a ``MemoryLog`` ledger,
checkpoints signed by its key and cosigned by witness keys): the seed and the state, key
derivation and registration, and every check before a release. Each attack is one a registry
operator (or an insider at it) could try to get a key released early or for the wrong bids.
The same program against the real server: tests/auctions/test_trustee_program.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bluecarbon_audit import merkle
from bluecarbon_audit.auctions import sealing, trustee_keys
from bluecarbon_audit.cli import main
from bluecarbon_audit.cosignature import Cosigner
from bluecarbon_audit.note import Signer
from bluecarbon_audit.policy import Policy
from bluecarbon_audit.testing import MemoryLog
from bluecarbon_audit.trustee import (
    ApiError,
    State,
    TrusteeDir,
    TrusteeError,
    TrusteeRun,
)

ORG = 7


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FakeRegistry:
    """The registry's API for one trustee organization, over a ledger in memory."""

    def __init__(self) -> None:
        self.log = MemoryLog()
        self.witnesses = [Cosigner.generate(f"witness.example/w{i}") for i in (1, 2)]
        self.keys: list[dict[str, Any]] = []
        self.auctions: dict[int, dict[str, Any]] = {}
        self.checkpoints_issued: list[tuple[int, str, dict[str, str]]] = []
        self.idempotency: dict[str, tuple[list[str], Any]] = {}
        self.register_calls: list[tuple[int, str]] = []
        self.releases: list[tuple[int, bytes]] = []
        self.feed_extra: list[dict[str, Any]] = []  # entries shown in the feed but not logged
        self.checkpoint_pages: list[int] = []  # the ``after`` of each page of checkpoints asked

    def policy(self, quorum: int = 2) -> Policy:
        return Policy.from_flags(
            [self.log.verifier_key], [w.verifier().to_string() for w in self.witnesses], quorum
        )

    # ---- what the registry does --------------------------------------------------------------

    def append(self, type_: str, data: dict[str, Any]) -> int:
        self.log.append(type_, data)
        return len(self.log.entries) - 1

    def add_keys(self, publics: list[bytes], organization: int = ORG) -> list[dict[str, Any]]:
        if any(r["public_key"] == b64(p) for r in self.keys for p in publics):
            raise ApiError(409, "key_registered", "a public key is already registered")
        seq = self.append("trustee.keys", {"organization": organization})
        rows = []
        for p in publics:
            row = {
                "id": len(self.keys) + 1,
                "organization": organization,
                "public_key": b64(p),
                "entry_seq": seq,
                "auction": None,
                "position": None,
                "released_seq": None,
            }
            self.keys.append(row)
            rows.append(dict(row))
        return rows

    def schedule(self, auction: int, *, public_key: bytes | None = None) -> dict[str, Any]:
        """Schedule a 2-of-3 auction naming this trustee at position 2, with its oldest unused
        key (or ``public_key``, what an insider would show)."""
        row = next(r for r in self.keys if r["auction"] is None)
        row["auction"], row["position"] = auction, 2
        shown = public_key or base64.b64decode(row["public_key"])
        others = [
            {"position": p, "trustee": 100 + p, "key": 900 + p, "public_key": b64(bytes([p]) * 32)}
            for p in (1, 3)
        ]
        mine = {"position": 2, "trustee": ORG, "key": row["id"], "public_key": b64(shown)}
        trustees = sorted([*others, mine], key=lambda t: t["position"])
        self.append("auction.schedule", {"auction": auction, "trustee_keys": trustees})
        self.auctions[auction] = {
            "id": auction,
            "state": "open",
            "closes_at": "2026-12-01T00:00:00Z",
            "sealing": {
                "mode": "trustees",
                "threshold": 2,
                "trustees": [{**t, "released": False} for t in trustees],
            },
        }
        return row

    def close(self, auction: int) -> int:
        self.auctions[auction]["state"] = "closing"
        return self.append("auction.close", {"auction": auction, "bids": 3, "book_root": "00"})

    def checkpoint(self, *cosigners: Cosigner, signer: Signer | None = None) -> int:
        size = len(self.log.entries)
        note = self.log.checkpoint(size) if signer is None else self._signed_by(signer, size)
        lines = {c.name.split("/")[-1]: c.cosign(note).to_line() for c in cosigners}
        self.checkpoints_issued.append((size, note, lines))
        return size

    def _signed_by(self, signer: Signer, size: int) -> str:
        from bluecarbon_audit.note import Checkpoint, checkpoint_sign

        return checkpoint_sign(Checkpoint(self.log.origin, size, self.log.root(size)), signer)

    # ---- the API -----------------------------------------------------------------------------

    def trustee_keys(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.keys]  # what an API key of the organization is shown

    def register(self, public_keys: list[bytes], idempotency_key: str) -> Any:
        body = [b64(k) for k in public_keys]
        self.register_calls.append((len(public_keys), idempotency_key))
        if idempotency_key in self.idempotency:
            sent, answer = self.idempotency[idempotency_key]
            if sent != body:
                raise ApiError(422, "idempotency_mismatch", "used with a different request")
            return answer
        answer = self.add_keys(list(public_keys))
        self.idempotency[idempotency_key] = (body, answer)
        return answer

    def auction(self, auction: int) -> Any:
        return json.loads(json.dumps(self.auctions[auction]))

    def release(self, auction: int, private_key: bytes) -> Any:
        self.releases.append((auction, private_key))
        row = next(r for r in self.keys if r["auction"] == auction)
        if b64(sealing.public_key_of(private_key)) != row["public_key"]:
            raise ApiError(422, "key_mismatch", "not the private key of the registered key")
        if self.auctions[auction]["state"] != "closing":
            raise ApiError(409, "auction_wrong_state", "no longer waiting for keys")
        if row["released_seq"] is None:
            row["released_seq"] = self.append("auction.key_release", {"auction": auction})
        return dict(row)

    def entries(self, after: int, types: list[str]) -> Any:
        items = []
        for seq, body in enumerate(self.log.entries):
            entry = json.loads(body)
            if seq > after and entry["type"] in types:
                items.append({"seq": seq, "type": entry["type"], "canonical": body.decode()})
        items += [i for i in self.feed_extra if i["seq"] > after]
        return {"entries": sorted(items, key=lambda i: i["seq"]), "next_after": None}

    def checkpoint_latest(self) -> str | None:
        if not self.checkpoints_issued:
            return None
        _, note, lines = self.checkpoints_issued[-1]
        return note + "".join(lines[n] for n in sorted(lines))

    def checkpoints(self, after: int) -> Any:
        self.checkpoint_pages.append(after)
        rows = [
            {"size": size, "note": note, "cosignatures": lines}
            for size, note, lines in self.checkpoints_issued
            if size > after
        ]
        return {"checkpoints": rows[:100], "next_after": rows[99]["size"] if rows[100:] else None}

    def inclusion_proof(self, seq: int, tree_size: int) -> Any:
        leaves = self.log.levels[0]

        def node(level: int, index: int) -> bytes:
            return merkle.root_of(leaves[index << level : (index + 1) << level])

        return {"proof": [b64(h) for h in merkle.inclusion_proof(seq, tree_size, node)]}


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def trustee_dir(tmp_path: Path) -> TrusteeDir:
    return TrusteeDir.init(tmp_path / "trustee")


def program(directory: TrusteeDir, registry: FakeRegistry, quorum: int = 2) -> TrusteeRun:
    return TrusteeRun(TrusteeDir(directory.path), registry, registry.policy(quorum))


def scheduled(trustee_dir: TrusteeDir, registry: FakeRegistry, auction: int = 41) -> TrusteeRun:
    """A trustee with 3 keys registered and an auction that took its first."""
    run = program(trustee_dir, registry)
    run.register(3)
    registry.schedule(auction)
    return run


def released_key(registry: FakeRegistry, auction: int) -> bool:
    return any(a == auction for a, _ in registry.releases)


# ---- the seed and the state -------------------------------------------------------------------


def test_init_makes_a_seed_only_its_owner_reads_and_an_empty_state(tmp_path: Path) -> None:
    assert main(["trustee", "init", str(tmp_path / "t")]) == 0
    seed = tmp_path / "t" / "seed"
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
    assert len(bytes.fromhex(seed.read_text().strip())) == 32
    state = json.loads((tmp_path / "t" / "state.json").read_text())
    assert state == {
        "version": 1,
        "organization": None,
        "next_index": 0,
        "keys": [],
        "released": [],
        "finished": {},
    }


def test_init_refuses_to_make_a_new_seed_over_a_trustee(tmp_path: Path, capsys: Any) -> None:
    assert main(["trustee", "init", str(tmp_path / "t")]) == 0
    seed = (tmp_path / "t" / "seed").read_bytes()
    assert main(["trustee", "init", str(tmp_path / "t")]) == 1
    assert "not making a new seed" in capsys.readouterr().err
    assert (tmp_path / "t" / "seed").read_bytes() == seed
    (tmp_path / "t" / "state.json").unlink()  # even with the state gone, the seed stays
    assert main(["trustee", "init", str(tmp_path / "t")]) == 1
    assert (tmp_path / "t" / "seed").read_bytes() == seed


def test_a_seed_others_can_read_is_refused(trustee_dir: TrusteeDir) -> None:
    os.chmod(trustee_dir.seed_path, 0o644)
    with pytest.raises(TrusteeError, match="readable by others"):
        TrusteeDir(trustee_dir.path).private_key(0)


def test_the_state_is_replaced_whole_or_not_at_all(
    trustee_dir: TrusteeDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = State(next_index=3, organization=ORG)
    state.keys[0] = {"public_key": b64(trustee_dir.public_key(0)), "id": 5}
    state.released[41] = {"index": 0, "key": 5, "seq": 12, "time": "2026-12-01T00:00:00Z"}
    trustee_dir.save(state)
    assert trustee_dir.read() == state

    def crash(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        trustee_dir.save(State(next_index=99))
    assert trustee_dir.read() == state  # the old state, whole
    assert sorted(p.name for p in trustee_dir.path.iterdir()) == ["seed", "state.json"]


def test_a_damaged_state_stops_the_program_instead_of_starting_afresh(
    trustee_dir: TrusteeDir,
) -> None:
    trustee_dir.state_path.write_text('{"version": 1, "next_index": ')
    with pytest.raises(TrusteeError, match="unreadable"):
        trustee_dir.read()


def test_one_command_at_a_time_holds_the_directory(trustee_dir: TrusteeDir) -> None:
    with trustee_dir.locked(), pytest.raises(TrusteeError, match="another trustee command"):  # noqa: SIM117
        with TrusteeDir(trustee_dir.path).locked():
            pass


# ---- keys -------------------------------------------------------------------------------------


def test_key_i_is_the_hmac_of_the_seed_and_its_index(trustee_dir: TrusteeDir) -> None:
    seed = bytes.fromhex(trustee_dir.seed_path.read_text())
    for i in (0, 1, 17, 100):
        raw = hmac.new(seed, f"bluecarbon/trustee-key/v1\n{i}".encode(), hashlib.sha256).digest()
        assert trustee_dir.private_key(i) == raw
        public = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
        assert trustee_dir.public_key(i) == public == trustee_keys.public_key(seed, i)
    assert trustee_dir.find(trustee_dir.public_key(17), 50) == 17
    assert trustee_dir.find(trustee_dir.public_key(17), 17) is None  # only below the bound


def test_keys_are_registered_100_a_call_each_with_an_idempotency_key_of_its_first_index(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    run = program(trustee_dir, registry)
    events = run.register(250)
    fingerprint = trustee_dir.public_key(0).hex()[:16]
    assert [n for n, _ in registry.register_calls] == [100, 100, 50]
    assert [k.rsplit("/", 1)[1] for _, k in registry.register_calls] == ["0", "100", "200"]
    assert registry.register_calls[0][1] == f"bluecarbon-trustee/keys/{fingerprint}/0"
    assert [e.kind for e in events] == ["registered"] * 3
    state = trustee_dir.read()
    assert state.next_index == 250 and state.organization == ORG
    assert state.keys[249] == {"public_key": b64(trustee_dir.public_key(249)), "id": 250}


def test_a_registration_retried_after_a_crash_registers_nothing_twice(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    before = trustee_dir.state_path.read_bytes()
    program(trustee_dir, registry).register(3)
    after = trustee_dir.state_path.read_bytes()
    # The crash: the keys were registered, the state was not written.
    trustee_dir.state_path.write_bytes(before)
    program(trustee_dir, registry).register(3)
    assert len(registry.keys) == 3  # the same call, answered from the registry's record
    assert trustee_dir.state_path.read_bytes() == after
    # Retried with another count: the keys already there are found and recorded, the rest added.
    trustee_dir.state_path.write_bytes(before)
    events = program(trustee_dir, registry).register(5)
    assert [e.kind for e in events] == ["recovered"] * 3 + ["registered"]
    assert len(registry.keys) == 5
    assert sorted(trustee_dir.read().keys) == [0, 1, 2, 3, 4]


def test_a_key_registered_in_the_trustees_name_is_an_alert(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    run = program(trustee_dir, registry)
    run.register(2)
    registry.add_keys([sealing.public_key_of(sealing.generate_private_key())])
    events = run.run_pass(min_free=1, count=5)
    alerts = [e for e in events if e.kind == "alert"]
    assert len(alerts) == 1 and alerts[0].code == "foreign_key" and alerts[0].bad
    assert 3 not in {int(r["id"]) for r in trustee_dir.read().keys.values()}


# ---- the checks before a release ---------------------------------------------------------------


def test_it_releases_only_once_a_witnessed_checkpoint_includes_the_close(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    run = scheduled(trustee_dir, registry)
    w1, w2 = registry.witnesses
    registry.checkpoint(w1, w2)
    assert run.release(41).kind == "waiting"  # open
    registry.auctions[41]["state"] = "closing"  # the API says closed; the ledger does not yet
    waiting = run.release(41)
    assert waiting.kind == "waiting" and "no auction.close entry" in waiting.message
    close_seq = registry.close(41)
    waiting = run.release(41)  # the only checkpoint is older than the close
    assert waiting.kind == "waiting" and f"does not cover entry {close_seq}" in waiting.message
    registry.checkpoint()  # signed, cosigned by nobody
    assert "short of the quorum" in run.release(41).message
    registry.checkpoint(w1)  # one of the two witnesses
    assert "by witness.example/w1, short of the quorum 2 of (witness.example/w1, witness" in (
        run.release(41).message
    )
    assert not registry.releases
    registry.checkpoint(w1, w2)
    done = run.release(41)
    assert done.kind == "released", done.message
    assert registry.releases == [(41, trustee_dir.private_key(0))]
    assert done.detail["close_seq"] == close_seq
    assert done.detail["cosigned_by"] == ["witness.example/w1", "witness.example/w2"]
    assert trustee_dir.read().released[41]["index"] == 0
    assert run.release(41).kind == "already" and len(registry.releases) == 1


def test_an_older_witnessed_checkpoint_serves_when_the_latest_is_not_cosigned_yet(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    run = scheduled(trustee_dir, registry)
    registry.close(41)
    registry.checkpoint(*registry.witnesses)
    registry.append("credit.transfer", {})
    registry.checkpoint()  # the latest, not cosigned yet
    assert run.release(41).kind == "released"


def test_on_a_busy_log_the_latest_cosigned_checkpoint_is_looked_for_first(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    """A checkpoint a second, and the witnesses cosign the latest they are sent: the pages
    right after the close may hold no cosigned checkpoint, the last hundred one."""
    run = scheduled(trustee_dir, registry)
    registry.close(41)
    for i in range(250):
        registry.append("credit.transfer", {"n": i})
        registry.checkpoint(*(registry.witnesses if i == 230 else ()))
    latest = len(registry.log.entries)
    assert run.release(41).kind == "released"
    assert registry.checkpoint_pages == [latest - 100]


def test_a_key_the_trustee_did_not_make_is_refused(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    run = program(trustee_dir, registry)
    run.register(2)
    # An insider registers a key of its own in the trustee's name, and it is the one assigned.
    foreign = sealing.generate_private_key()
    registry.keys[0]["public_key"] = b64(sealing.public_key_of(foreign))
    registry.schedule(41)
    registry.close(41)
    registry.checkpoint(*registry.witnesses)
    event = run.release(41)
    assert event.kind == "refused" and event.code == "key_not_ours" and event.bad
    assert "did not make" in event.message
    assert not registry.releases


def test_an_api_key_the_ledger_does_not_assign_is_refused(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    """The API shows one of the trustee's own keys, but the auction's schedule entry on the
    ledger (what the verifier and the bidders hold it to) names another."""
    run = program(trustee_dir, registry)
    run.register(3)
    registry.schedule(41, public_key=sealing.public_key_of(sealing.generate_private_key()))
    registry.auctions[41]["sealing"]["trustees"][1]["public_key"] = b64(trustee_dir.public_key(0))
    registry.close(41)
    registry.checkpoint(*registry.witnesses)
    event = run.release(41)
    assert event.code == "schedule_mismatch", event.message
    assert not registry.releases


def test_a_key_assigned_to_two_auctions_is_refused(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    run = scheduled(trustee_dir, registry, auction=41)
    # The ledger assigns the same key to auction 42, still open: releasing for 41 opens 42.
    mine = registry.auctions[41]["sealing"]["trustees"][1]
    registry.append("auction.schedule", {"auction": 42, "trustee_keys": [mine]})
    registry.close(41)
    registry.checkpoint(*registry.witnesses)
    event = run.release(41)
    assert event.code == "key_reused", event.message
    assert not registry.releases


def test_a_key_released_for_another_auction_is_not_released_again(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    run = scheduled(trustee_dir, registry, auction=41)
    registry.close(41)
    registry.checkpoint(*registry.witnesses)
    assert run.release(41).kind == "released"
    # The registry now shows auction 43 assigning the key already released.
    registry.auctions[43] = json.loads(json.dumps(registry.auctions[41]))
    event = run.release(43)
    assert event.code == "key_reused", event.message
    assert len(registry.releases) == 1


def test_a_close_the_witnessed_log_does_not_hold_is_refused(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    """The registry shows the trustee a close entry that is not in the log the witnesses
    cosigned (a split view): its inclusion proof fails against the witnessed root."""
    run = scheduled(trustee_dir, registry)
    registry.checkpoint(*registry.witnesses)
    registry.append("credit.transfer", {})
    registry.checkpoint(*registry.witnesses)
    seq = len(registry.log.entries) - 1
    fake = registry.log.entries[seq].replace(b'"credit.transfer"', b'"auction.close"')
    fake = fake.replace(b'"data":{}', b'"data":{"auction":41,"bids":3,"book_root":"00"}')
    registry.feed_extra.append({"seq": seq, "type": "auction.close", "canonical": fake.decode()})
    registry.auctions[41]["state"] = "closing"
    event = run.release(41)
    assert event.code == "ledger_proof", event.message
    assert not registry.releases


def test_a_checkpoint_signed_by_a_key_the_trustee_does_not_pin_is_not_enough(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    """The operator signs a checkpoint with a key of its own and has its own witnesses cosign:
    the trustee's policy names the log key and witnesses it pinned, not these."""
    run = scheduled(trustee_dir, registry)
    registry.close(41)
    rogue = [Cosigner.generate(f"witness.example/w{i}") for i in (1, 2)]
    registry.checkpoint(*rogue, signer=Signer.generate(registry.log.origin))
    registry.checkpoint(*rogue)  # the real log key, cosigned by impostors
    event = run.release(41)
    assert event.kind == "waiting", event.message
    assert not registry.releases


def test_a_key_mismatch_answer_is_a_loud_refusal(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    run = scheduled(trustee_dir, registry)
    registry.close(41)
    registry.checkpoint(*registry.witnesses)
    # After scheduling, an insider changes the public key in the registry's table.
    registry.keys[0]["public_key"] = b64(bytes(32))
    event = run.release(41)
    assert event.kind == "refused" and event.code == "key_mismatch", event.message
    assert 41 not in trustee_dir.read().released


def test_an_auction_that_no_longer_waits_for_keys_is_skipped_and_not_asked_again(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    run = scheduled(trustee_dir, registry)
    registry.close(41)
    registry.auctions[41]["state"] = "cleared"  # two other trustees released
    events = run.run_pass(min_free=1, count=5)
    assert [e.kind for e in events] == ["skipped"]
    assert trustee_dir.read().finished == {41: "cleared"}
    assert run.run_pass(min_free=1, count=5) == [] and not registry.releases


def test_run_keeps_unused_keys_registered_and_releases_for_each_auction(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    run = program(trustee_dir, registry)
    events = run.run_pass(min_free=5, count=8)
    assert [e.kind for e in events] == ["registered"] and len(registry.keys) == 8
    assert run.run_pass(min_free=5, count=8) == []  # 8 free: nothing to do
    for auction in (41, 42, 43, 44):
        registry.schedule(auction)
    registry.close(41)
    registry.close(42)
    registry.checkpoint(*registry.witnesses)
    events = run.run_pass(min_free=5, count=8)
    assert [(e.kind, e.auction) for e in events] == [
        ("registered", None),  # 4 free left, below 5
        ("released", 41),
        ("released", 42),
        ("waiting", 43),
        ("waiting", 44),
    ]
    assert len(registry.keys) == 16
    assert [a for a, _ in registry.releases] == [41, 42]


def test_release_needs_a_pinned_log_key_and_a_witness_quorum(
    trustee_dir: TrusteeDir, registry: FakeRegistry, capsys: Any
) -> None:
    base = ["trustee", "release", str(trustee_dir.path), "--server", "http://127.0.0.1:9"]
    base += ["--api-key", "k", "--auction", "41"]
    assert main(base) == 2
    assert "no log key" in capsys.readouterr().err
    assert main([*base, "--key", registry.log.verifier_key]) == 2
    assert "cosigned" in capsys.readouterr().err
    witness = registry.witnesses[0].verifier().to_string()
    assert main([*base, "--key", registry.log.verifier_key, "--witness", witness]) == 1
    assert "unreachable" in capsys.readouterr().out  # it got as far as asking the registry


def test_a_trustee_directory_holds_one_organizations_keys(
    trustee_dir: TrusteeDir, registry: FakeRegistry
) -> None:
    program(trustee_dir, registry).register(1)
    registry.keys[0]["organization"] = ORG + 1  # an API key of another organization
    with pytest.raises(TrusteeError, match="organization"):
        program(trustee_dir, registry).run_pass(min_free=0, count=1)


# ---- the key for the portal's release form ----------------------------------------------------


def test_key_writes_the_private_key_of_its_own_public_key_as_the_registry_takes_it(
    trustee_dir: TrusteeDir, tmp_path: Path, capsys: Any
) -> None:
    """Offline: the seed's key whose public half the auction shows, one line of base64 (the
    registry's ``private_key``), to stdout or to a new file only its owner reads."""
    public = b64(trustee_dir.public_key(7))  # registered by an earlier call, unknown to state
    assert main(["trustee", "key", str(trustee_dir.path), "--public-key", public]) == 0
    line = capsys.readouterr().out
    assert line == b64(trustee_dir.private_key(7)) + "\n"
    assert sealing.public_key_of(base64.b64decode(line)) == base64.b64decode(public)
    out = tmp_path / "auction-key.txt"
    args = ["trustee", "key", str(trustee_dir.path), "--public-key", public, "--out", str(out)]
    assert main(args) == 0
    assert out.read_text() == line and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert main(args) == 2  # never over a file
    assert "exists" in capsys.readouterr().err


def test_key_refuses_a_public_key_the_trustee_did_not_make(
    trustee_dir: TrusteeDir, capsys: Any
) -> None:
    stranger = X25519PrivateKey.generate().public_key().public_bytes_raw()
    args = ["trustee", "key", str(trustee_dir.path), "--public-key", b64(stranger)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "REFUSED (key_not_ours)" in captured.err
    assert main(["trustee", "key", str(trustee_dir.path), "--public-key", "not base64!"]) == 2
