"""``manage.py ledger_tamper_drill`` on the demo ledger: each insider attack of
docs/threat-model.md is made on a scratch copy and detected by every mechanism the threat model
names for it; nothing fires on the untouched copy; the live database is as it was and every
scratch database is gone afterwards."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import TestCase, override_settings

from ledger import drill, drill_attacks
from ledger.models import LedgerHead

postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the drill copies a PostgreSQL database (COPY, CREATE DATABASE ... TEMPLATE) and "
    "lifts its append-only triggers as a PostgreSQL superuser would; SQLite has neither",
)
pytestmark = pytest.mark.slow


def live_state() -> dict[str, Any]:
    """Row counts of every table, the ledger head and the files the live system keeps."""
    head = LedgerHead.objects.get(pk=1)
    keys = Path(settings.LEDGER_VERIFIER_KEYS_FILE)
    state = Path(settings.LEDGER_SIGNER_STATE_FILE)
    return {
        "rows": {m._meta.db_table: m.objects.count() for m in apps.get_models()},
        "head": (head.size, bytes(head.last_hash)),
        "verifier keys": keys.read_text() if keys.exists() else None,
        "signer state": state.read_text() if state.exists() else None,
    }


def databases() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        return {row[0] for row in cursor.fetchall()}


@dataclasses.dataclass
class Drilled:
    report: drill.Report
    before: dict[str, Any]
    after: dict[str, Any]
    databases_after: set[str]

    def row(self, attack: str) -> drill.Row:
        return next(r for r in self.report.rows if r.attack == attack)


@pytest.fixture(scope="module")
def drilled(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Drilled]:
    """The demo data (with its settled auction) in the test database, which the drill takes for
    the live one, rolled back after the module; one drill with witnesses over every attack."""
    state = tmp_path_factory.mktemp("live") / "signer-state.json"
    with django_db_blocker.unblock(), override_settings(LEDGER_SIGNER_STATE_FILE=str(state)):
        atomics = TestCase._enter_atomics()  # as a TestCase's class-level data
        try:
            call_command("seed_demo", stdout=io.StringIO())  # its listing: listings/drill.py
            before = live_state()
            report = drill.drill_run()
            yield Drilled(report, before, live_state(), databases())
        finally:
            TestCase._rollback_atomics(atomics)


CLAIMED = [a for a in drill.attacks() if a.claimed]


@postgresql
@pytest.mark.parametrize("attack", CLAIMED, ids=[a.id for a in CLAIMED])
def test_each_attack_is_detected_by_every_mechanism_the_threat_model_names(drilled, attack):
    row = drilled.row(attack.id)
    assert row.skipped is None, row.skipped
    assert row.change
    found = {f.mechanism: f for f in row.findings}
    assert set(found) == set(drill.MECHANISMS)  # every mechanism ran, the witnesses' too
    for mechanism in attack.claimed:
        assert found[mechanism].detected, f"{mechanism}: {found[mechanism].message}"
    assert row.ok and row.where


@postgresql
@pytest.mark.parametrize(
    ("attack", "mechanism", "words"),
    [
        ("byte-flip", "verify", "entry {mid}: not authenticated"),
        ("delete", "verify", "entry {mid}: missing: the next stored entry is {mid1}"),
        ("reorder", "verify", "entry {mid}: stored at position {mid} but its bytes say seq {mid1}"),
        ("truncate", "verify", "checkpoint at size {size} but the ledger ends at {size3}"),
        ("truncate", "signer", "entry {last}, the last one signed, is not the one"),
        ("forged-entry", "verify", "entry {size}: not authenticated"),
        ("forged-entry", "signer", "entry {size} is not authenticated"),
        ("rebuild-other-key", "verify", "signature does not verify with a trusted key"),
        ("rebuild-other-key", "witnesses", "403"),
        ("rewrite-real-key", "signer-state", "latest checkpoint (size {size}) is not stored"),
        ("rewrite-real-key", "signer", "history was rewritten"),
        ("rewrite-real-key", "witnesses", "sizes are equal ({size}) but the roots differ"),
        ("rewrite-signer-reset", "witnesses", "sizes are equal ({size}) but the roots differ"),
        ("checkpoint-newest", "signer-state", "latest checkpoint (size {size}) is not stored"),
        ("rollback", "signer-state", "the ledger has {size3} entries, but the checkpoint signer"),
        ("rollback", "signer", "a rollback"),
        (
            "rollback-signed",
            "witnesses",
            "the witness cosigned size {size}, larger than our latest",
        ),
        ("interior-node", "verify", "stored Merkle node at level 2, index 1 is not the hash"),
        ("leaf-rebuilt", "verify", "stored Merkle leaf (level 0, index {mid}) is not the hash"),
        ("leaf-rebuilt", "signer", "stored Merkle tree's root at size {size}"),
        ("extra-key", "pinned", "signature does not verify with a trusted key"),
        ("holding-row", "verify", "holding of account"),
        ("escrow-owner", "verify", "owner"),
        ("document-hash", "verify", "document row differs from the ledger: sha256"),
        ("bid-ciphertext", "verify", "stored ciphertext does not hash to its commitment"),
        ("auction-result", "verify", "published result differs from the recomputation"),
    ],
)
def test_each_detection_names_the_place(drilled, attack, mechanism, words):
    size = drilled.report.entries
    where = words.format(
        size=size, size3=size - 3, last=size - 1, mid=size // 2, mid1=size // 2 + 1
    )
    finding = next(f for f in drilled.row(attack).findings if f.mechanism == mechanism)
    assert finding.detected and where in finding.message, finding.message


@postgresql
def test_nothing_fires_on_the_untouched_copy(drilled):
    row = drilled.row("none")
    assert row.control and row.ok
    assert [f.detected for f in row.findings] == [False] * len(drill.MECHANISMS)
    assert not any(f.error for f in row.findings)


@postgresql
def test_a_forged_entry_with_the_application_key_is_signed_and_witnessed(drilled):
    """What the threat model says nothing catches: an insider who holds the entry key writes
    entries as the application does."""
    row = drilled.row("forged-entry-mac")
    assert not row.claimed and row.skipped is None
    assert not row.detected, row.where
    signer = next(f for f in row.findings if f.mechanism == "signer")
    assert signer.message == f"signed a checkpoint of size {drilled.report.entries + 1}"


@postgresql
def test_a_changed_stored_auction_result_is_detected(drilled):
    row = drilled.row("auction-result-table")
    assert row.skipped is None
    assert row.detected, row.findings


@postgresql
def test_the_drill_passes_and_leaves_the_live_database_as_it_was(drilled):
    assert drilled.report.ok
    assert drilled.report.live_untouched is True
    assert drilled.after == drilled.before  # no row, head, key or signer state changed
    assert drilled.report.entries == drilled.before["head"][0]


@postgresql
def test_every_scratch_database_is_dropped(drilled):
    prefix = drilled.report.scratch_prefix
    assert prefix.startswith(f"{connection.settings_dict['NAME'][:36]}_drill_")
    assert drilled.report.scratch_left == []
    # Other databases on the server may come and go meanwhile: only the drill's are counted.
    assert {d for d in drilled.databases_after if d.startswith(prefix)} == set()


@postgresql
def test_the_command_prints_the_table_and_exits_zero(db, capsys):
    call_command("seed_demo", stdout=io.StringIO())
    call_command("ledger_tamper_drill", "--no-witnesses", "--attack", "holding-row")
    out = capsys.readouterr().out
    assert "holding-row" in out and "verify, pinned, monitor, signer-state" in out
    assert out.rstrip().splitlines()[-1].startswith("OK: 1 of 1 attacks detected")

    call_command("ledger_tamper_drill", "--no-witnesses", "--attack", "holding-row", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["live_untouched"] is True
    assert [r["attack"] for r in report["rows"]] == ["none", "holding-row"]


@postgresql
def test_the_command_exits_non_zero_when_a_claimed_mechanism_misses(db, capsys, monkeypatch):
    """A claim the code does not back (the signer does not look at holdings) fails the drill."""
    wrong = [
        dataclasses.replace(a, claimed=("verify", "signer")) if a.id == "holding-row" else a
        for a in drill_attacks.ATTACKS
    ]
    monkeypatch.setattr(drill_attacks, "ATTACKS", wrong)
    call_command("seed_demo", stdout=io.StringIO())
    with pytest.raises(SystemExit) as exit:
        call_command("ledger_tamper_drill", "--no-witnesses", "--attack", "holding-row")
    assert exit.value.code == 1
    out = capsys.readouterr().out
    assert "MISSED: holding-row: claimed for signer, not detected" in out
    assert "yes !" in out


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the SQLite refusal")
def test_it_refuses_to_run_on_sqlite(db):
    with pytest.raises(CommandError, match="runs on PostgreSQL only"):
        call_command("ledger_tamper_drill")
