"""``seed_demo`` loads demo data in development and refuses to in production, where it would
create the superuser ``admin`` with the published demo password. Its auctions are sealed 2-of-3
to three demo trustees, whose release a task labelled DEMO ONLY performs, and only where their
demo seeds exist."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import os
import subprocess
import sys
from collections import Counter
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
from auctions.models import Auction, Award, Bid, Bidder, Deposit, Paddle, Raise, TrusteeKey
from ledger.core.entry import decode_entry, format_time
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
        **{k: v for k, v in os.environ.items() if k != "WEBHOOK_ALLOW_LOOPBACK"},
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
    rongcheng, xiangshan, putian, putian_clock, zhanjiang = Auction.objects.order_by("pk")
    # The ascending formats are not sealed to trustees: the English lot takes open bids, the
    # clock auction's round bids are committed (docs/auctions-ascending.md).
    assert (xiangshan.sealing, putian_clock.sealing) == ("open", "operator_rounds")
    assert putian_clock.state == Auction.State.OPEN and putian_clock.rounds.count() == 1
    for a in (rongcheng, putian, zhanjiang):
        assert a.by_trustees and a.threshold == 2 and a.trustees == [o.pk for o in board]
        assert a.public_key is None and a.private_key_sealed is None
        assert a.release_by is not None and a.release_by > a.closes_at
    assert (putian.state, zhanjiang.state) == (Auction.State.OPEN, Auction.State.SCHEDULED)
    # Rongcheng was opened by the exchange's and the registry's keys; the auditor abstained.
    assert rongcheng.state == Auction.State.SETTLED
    clear = decode_entry(bytes(LedgerEntry.objects.get(seq=rongcheng.result_seq).body))
    assert clear.data["sealing"] == "trustees" and clear.data["opened_with"] == [1, 2]
    released = TrusteeKey.objects.filter(auction=rongcheng, private_key__isnull=False)
    assert sorted(released.values_list("position", flat=True)) == [1, 2]
    assert not Bid.objects.filter(auction=rongcheng, reason__startswith="unreadable").exists()
    assert Award.objects.filter(auction=rongcheng, state="delivered").count() == 2
    # Xiangshan takes open bids: no keys, no trustees.
    assert xiangshan.is_english and xiangshan.sealing == "open" and not xiangshan.trustees
    assert not TrusteeKey.objects.filter(auction=xiangshan).exists()


def test_the_demo_replays_xiangshan_as_held_an_english_auction_among_twenty_bidders(
    db, settings, tmp_path
):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", stdout=io.StringIO())
    xs = Auction.objects.get(title__contains="Xiangshan")
    assert xs.format == "english" and xs.state == Auction.State.SETTLED
    assert (xs.quantity, xs.lot_kg, xs.reserve) == (2_340_100, 2_340_100, 3000)
    assert xs.increments == [[0, 100]] and xs.deposit_required == 3_000_000
    # Twenty approved bidder organizations bid, each from its holding account with its deposit.
    paddles = Paddle.objects.filter(auction=xs).select_related("bidder", "account")
    assert paddles.count() == 20
    for p in paddles:
        assert Bidder.objects.get(organization=p.bidder).status == "approved"
        assert p.account.kind == "holding" and p.account.organization_id == p.bidder_id
    assert Deposit.objects.filter(auction=xs, amount=3_000_000).count() == 20
    # Many rising rounds from the start price, each beating the last by at least 1.00 CNY/t;
    # the later ones in the timed phase, each restarting the countdown.
    bids = list(Raise.objects.filter(auction=xs).order_by("entry_seq"))
    prices = [b.price for b in bids]
    assert prices[0] == 3000 and prices[-1] == 10_600 and len(bids) > 40
    assert all(b - a >= 100 for a, b in itertools.pairwise(prices))
    timed = [b for b in bids if b.time >= xs.closes_at]
    assert len(timed) > 10
    assert xs.ends_at == bids[-1].time + dt.timedelta(seconds=xs.countdown_s)
    # The hammer at 106.00 CNY/t: 248,050.60 CNY, paid; the winner a precision-machinery
    # company, whose deposit was applied; the others' released.
    (award,) = Award.objects.filter(auction=xs)
    assert (
        award.bidder.handle == demo.XIANGSHAN_WINNER and "Precision Machinery" in award.bidder.name
    )
    assert (xs.clearing_price, award.amount_due, award.state) == (10_600, 24_805_060, "delivered")
    states = Counter(Deposit.objects.filter(auction=xs).values_list("state", flat=True))
    assert states == {"released": 19, "applied": 1}
    # Closed after the end, by the close entry's own time.
    (close,) = [
        e
        for e in (
            decode_entry(bytes(b))
            for b in LedgerEntry.objects.filter(type="auction.close").values_list("body", flat=True)
        )
        if e.data["auction"] == xs.pk
    ]
    assert close.time >= format_time(xs.ends_at) and close.data["bids"] == len(bids)
    assert "OK" in _verify()


def _verify() -> str:
    out = io.StringIO()
    call_command("ledger_verify", "--no-progress", stdout=out)
    return out.getvalue()


def test_the_demo_task_releases_two_of_three_keys_for_a_closed_demo_auction(
    db, settings, tmp_path, monkeypatch
):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", stdout=io.StringIO())
    putian = Auction.objects.get(title__startswith="Putian", format="uniform")
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
