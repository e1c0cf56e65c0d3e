"""``seed_demo`` loads demo data in development and refuses to in production, where it would
create the superuser ``admin`` with the published demo password. Its auctions are sealed 2-of-3
to three demo trustees, whose release a task labelled DEMO ONLY performs, and only where their
demo seeds exist."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from bluecarbon_audit.auctions import trustee_keys
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from auctions import demo, services, tasks, trustees
from auctions.core import sealing
from auctions.models import Auction, Bid, TrusteeKey
from ledger.core.entry import decode_entry
from ledger.entry_auth import create_key
from ledger.models import LedgerEntry, Organization, Role

ROOT = Path(__file__).resolve().parents[2]


def test_it_refuses_to_run_in_production(db, settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="BLUECARBON_ENV=production"):
        call_command("seed_demo")
    assert not get_user_model().objects.exists()
    assert not Organization.objects.exists() and not LedgerEntry.objects.exists()


def test_the_command_line_refuses_with_bluecarbon_env_production(tmp_path):
    from ledger.core.note import Signer

    key = tmp_path / "ledger-signing.key"
    key.write_text(Signer.generate("bluecarbon.test/ledger").to_string() + "\n")
    kek = tmp_path / "auction-kek.key"
    kek.write_text("11" * 32 + "\n")
    entry_key = tmp_path / "entry-mac.key"
    create_key(entry_key, since=0)
    receipt_key = tmp_path / "receipt-signing.key"
    receipt_key.write_text(Signer.generate("bluecarbon.test/ledger/receipts").to_string() + "\n")
    env = {
        **os.environ,
        "BLUECARBON_ENV": "production",
        "BLUECARBON_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "LEDGER_SIGNING_KEY_FILE": str(key),
        "LEDGER_ENTRY_KEY_FILE": str(entry_key),
        "AUCTION_KEK_FILE": str(kek),
        "AUCTION_RECEIPT_KEY_FILE": str(receipt_key),
        "REDIS_CACHE_URL": "redis://127.0.0.1:6379/9",  # never contacted: refused before
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "seed_demo refuses to run with BLUECARBON_ENV=production" in result.stderr
    assert "demo data loaded" not in result.stdout


def _board() -> list[Organization]:
    handles = [handle for handle, _ in demo.DEMO_TRUSTEES]
    board = sorted(Organization.objects.filter(handle__in=handles), key=lambda o: o.pk)
    assert [o.handle for o in board] == handles
    return board


def test_the_demo_auctions_are_sealed_two_of_three_to_three_demo_trustees(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", stdout=io.StringIO())
    board = _board()
    assert all(o.has_role(Role.TRUSTEE) and "(demo trustee)" in o.name for o in board)
    for org in board:  # each seed in the demo's var directory, named as a demo trustee seed
        path = tmp_path / "demo-trustee-seeds" / f"{org.handle}.DEMO-ONLY-trustee-seed"
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text().startswith("# DEMO ONLY")
        seed = bytes.fromhex(path.read_text().splitlines()[-1])
        keys = list(TrusteeKey.objects.filter(organization=org).order_by("pk"))
        assert [bytes(k.public_key) for k in keys] == [
            trustee_keys.public_key(seed, i) for i in range(len(keys))
        ]
    xiangshan, putian, zhanjiang = Auction.objects.order_by("pk")
    for a in (xiangshan, putian, zhanjiang):
        assert a.by_trustees and a.threshold == 2 and a.trustees == [o.pk for o in board]
        assert a.public_key is None and a.private_key_sealed is None
        assert a.release_by is not None and a.release_by > a.closes_at
    assert (putian.state, zhanjiang.state) == (Auction.State.OPEN, Auction.State.SCHEDULED)
    # Xiangshan was opened by the exchange's and the registry's keys; the auditor abstained.
    assert xiangshan.state == Auction.State.SETTLED
    clear = decode_entry(bytes(LedgerEntry.objects.get(seq=xiangshan.result_seq).body))
    assert clear.data["sealing"] == "trustees" and clear.data["opened_with"] == [1, 2]
    released = TrusteeKey.objects.filter(auction=xiangshan, private_key__isnull=False)
    assert sorted(released.values_list("position", flat=True)) == [1, 2]
    assert xiangshan.clearing_price == 10_600
    assert not Bid.objects.filter(auction=xiangshan, reason__startswith="unreadable").exists()


def test_the_demo_task_releases_two_of_three_keys_for_a_closed_demo_auction(
    db, settings, tmp_path, monkeypatch
):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", stdout=io.StringIO())
    putian = Auction.objects.get(title__startswith="Putian")
    bidder = Organization.objects.get(handle="ningbo-energy")
    services.bid_submit(
        actor=demo._actor(bidder),
        auction=putian.pk,
        ciphertext=sealing.seal_threshold(
            trustee_keys=[bytes(k.public_key) for k in trustees.auction_keys(putian)],
            threshold=2,
            origin=django_settings.LEDGER_ORIGIN,
            auction=putian.pk,
            bidder=bidder.pk,
            tiers=[{"price": 6_000, "lots": 100}],
        ),
    )
    assert tasks.demo_trustees_release_task() == 0  # open: nothing to release before the close
    later = putian.closes_at + dt.timedelta(seconds=1)
    with mock.patch.object(timezone, "now", lambda: later):
        assert services.auction_close(auction=putian.pk)
    # Without the demo seeds, as in production, and in production even with them: nothing.
    settings.VAR_DIR = tmp_path / "elsewhere"
    assert tasks.demo_trustees_release_task() == 0
    settings.VAR_DIR, settings.PRODUCTION = tmp_path, True
    assert tasks.demo_trustees_release_task() == 0
    assert trustees.released_count(putian) == 0
    settings.PRODUCTION = False
    monkeypatch.setattr(demo, "KEYS_LOW", 18)  # and each keeps enough unused keys
    assert tasks.demo_trustees_release_task() == 2
    assert tasks.demo_trustees_release_task() == 0  # released once
    released = TrusteeKey.objects.filter(auction=putian, private_key__isnull=False)
    assert sorted(released.values_list("position", flat=True)) == [1, 2]
    for org in _board():
        assert TrusteeKey.objects.filter(organization=org, auction__isnull=True).count() == 37
    services.auction_bids_open(auction=putian.pk, first=0, last=2**62)
    assert services.auction_clear(auction=putian.pk)
    putian.refresh_from_db()
    assert putian.state == Auction.State.CLEARED and putian.clearing_price == 5_000
    assert Bid.objects.get(auction=putian).status == Bid.Status.VALID
