"""Close, open, clear and settle a sealed-bid auction through a real Celery worker, vs the bare
HPKE-open rate of the same bids, measured in the same run.

Setup (not timed): a scratch PostgreSQL database; a seller holding the lot; ``--bidders``
approved bidders; a uniform-price auction of ``--bids`` / 2 lots of 1 t; ``--bids`` sealed
bids (Python HPKE client, one to three tiers each, spread evenly over the bidders) loaded in
bulk: the same Bid rows and ``bid.submit`` entries ``auctions.services.bid_submit`` writes
(without its receipts, which are not ledger state), chained and appended by COPY. A Celery
worker process (default concurrency, Redis from ``CELERY_BROKER_URL``) is started and left to
act on its own: the ETA task at the closing time starts the pipeline.

Measured: from the closing time until the auction is settled (polled every 20 ms), with the
time of each step taken from its ledger entry (close, clear, settle). Baseline, same run: one
process opening the same ciphertexts with ``cryptography``'s HPKE in a bare loop. Afterwards
(not timed) ``ledger_verify`` re-runs the whole auction from the ledger.

Targets (issue): 10,000 bids from 1,000 bidders in at most 5 s; 100,000 bids in at most 30 s.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
    export CELERY_BROKER_URL=redis://127.0.0.1:6379/0
    .venv/bin/python bench/auction_clearing.py [--bids 10000 --bidders 1000] [--quick]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import random
import sys
import time
import uuid

import _common as common


def _setup_market(n_bidders: int, lots: int) -> tuple[int, list[tuple[int, int, str]]]:
    """Registry, seller, bidders (id, account, handle); returns the seller account."""
    from django.db import transaction

    from auctions import services as auctions
    from ledger import services
    from ledger.actors import Actor
    from ledger.models import Account, Role
    from tests import factories

    op = Actor.system("bench")
    with transaction.atomic():
        world = factories.World()
        batch = world.issue(lots * 1000, share_bp=0)
    bidders = []
    # Committed every 100 bidders: each append updates the ledger's head row, and PostgreSQL
    # walks all of a row's versions written by one open transaction, so 30,000 appends in one
    # transaction cost O(n^2) (16 minutes for 10,000 bidders, measured).
    for first in range(0, n_bidders, 100):
        with transaction.atomic():
            for i in range(first, min(first + 100, n_bidders)):
                org = services.organization_register(
                    actor=op, handle=f"bidder-{i:05d}", name=f"Bidder {i}", roles=[Role.BIDDER]
                )
                acc = services.account_open(actor=op, organization=org.pk, name="Main")
                auctions.bidder_approve(actor=op, organization=org.pk)
                bidders.append((org.pk, acc.pk, org.handle))
    seller = Account.objects.get(pk=world.dev_account.pk)
    return seller.pk, batch.pk, bidders


def _create_auction(seller: int, batch: int, lots: int, closes_in: float) -> int:
    from auctions import services as auctions
    from tests import factories

    now = dt.datetime.now(dt.UTC)
    a = auctions.auction_create(
        actor=factories.OPERATOR,
        account=seller,
        batch=batch,
        title="bench",
        format="uniform",
        quantity=lots * 1000,
        lot_kg=1000,
        currency="CNY",
        tick=100,
        reserve=3000,
        cap_bp=None,
        deposit_required=0,
        bid_guarantee=False,
        tie_rule="pro_rata",
        undersubscribed="settle",
        opens_at=now,
        closes_at=now + dt.timedelta(seconds=closes_in),
    )
    auctions.auction_schedule(actor=factories.OPERATOR, auction=a.pk)
    return a.pk


def _seal_book(auction_id: int, public_key: bytes, bidders, n: int) -> list[tuple]:
    from django.conf import settings

    from auctions.core import sealing

    rng = random.Random(7)
    book = []
    for i in range(n):
        bidder, account, handle = bidders[i % len(bidders)]
        tiers = [
            {"price": 3000 + 100 * rng.randrange(0, 120), "lots": rng.randrange(1, 6)}
            for _ in range(rng.randrange(1, 4))
        ]
        # Distinct prices within one bid (a sealed bid may not repeat a price).
        seen, uniq = set(), []
        for t in tiers:
            if t["price"] not in seen:
                seen.add(t["price"])
                uniq.append(t)
        ct = sealing.seal(
            public_key=public_key,
            origin=settings.LEDGER_ORIGIN,
            auction=auction_id,
            bidder=bidder,
            tiers=uniq,
        )
        book.append((bidder, account, handle, ct))
    return book


def _load_book(auction_id: int, book: list[tuple]) -> None:
    """What bid_submit writes, for many bids at once: Bid rows, then their entries."""
    from django.db import connection, transaction
    from django.utils import timezone

    from auctions.core import sealing
    from auctions.models import Bid
    from ledger import locks
    from ledger.core.entry import encode_entry, entry_hash, format_time
    from ledger.services import entry_mac

    with transaction.atomic():
        rows = Bid.objects.bulk_create(
            [
                Bid(
                    auction_id=auction_id,
                    bidder_id=bidder,
                    account_id=account,
                    version=1,
                    ciphertext=ct,
                    commitment=sealing.commitment(ct).hex(),
                    entry_seq=-1,
                )
                for bidder, account, _, ct in book
            ],
            batch_size=5000,
        )
        size, prev = locks.ledger_head_lock()
        first = size
        now = format_time(timezone.now())
        bodies = []
        for row, (bidder, account, handle, ct) in zip(rows, book, strict=True):
            body = encode_entry(
                seq=size,
                prev=prev,
                time=now,
                type="bid.submit",
                actor=f"org:{handle}",
                data={
                    "auction": auction_id,
                    "bid": row.pk,
                    "bidder": bidder,
                    "version": 1,
                    "account": account,
                    "commitment": row.commitment,
                    "ciphertext": base64.b64encode(ct).decode(),
                },
            )
            bodies.append((size, body))
            prev, size = entry_hash(body), size + 1
        with connection.cursor() as cursor:
            with cursor.connection.cursor().copy(
                "COPY ledger_ledgerentry (seq, body, type, mac) FROM STDIN"
            ) as copy:
                for seq, body in bodies:  # each with its MAC, as every append writes it
                    copy.write_row((seq, body, "bid.submit", entry_mac(seq, entry_hash(body))))
            cursor.execute(
                "UPDATE ledger_ledgerhead SET size = %s, last_hash = %s WHERE id = 1",
                [size, prev],
            )
            cursor.execute(
                "UPDATE auctions_bid SET entry_seq = v.seq FROM (SELECT unnest(%s::bigint[]) "
                "AS id, unnest(%s::bigint[]) AS seq) v WHERE auctions_bid.id = v.id",
                [[r.pk for r in rows], list(range(first, size))],
            )


def _bare_open(auction_id: int, private: bytes, book: list[tuple]) -> float:
    """Seconds to HPKE-open every ciphertext in one process (the baseline)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from django.conf import settings

    from auctions.core import sealing

    key = X25519PrivateKey.from_private_bytes(private)
    origin = settings.LEDGER_ORIGIN
    started = time.perf_counter()
    for bidder, _, _, ct in book:
        sealing.SUITE.decrypt(ct, key, info=sealing.info(origin, auction_id, bidder))
    return time.perf_counter() - started


def _entry_time(auction_id: int, type: str) -> dt.datetime | None:
    from ledger.core.entry import decode_entry
    from ledger.models import LedgerEntry

    for (body,) in LedgerEntry.objects.filter(type=type).order_by("-seq").values_list("body")[:5]:
        e = decode_entry(bytes(body))
        if e.data.get("auction") == auction_id:
            return dt.datetime.fromisoformat(e.time.replace("Z", "+00:00"))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bids", type=int, default=10_000)
    parser.add_argument("--bidders", type=int, default=None, help="default bids / 10")
    parser.add_argument("--quick", action="store_true", help="CI: 1,000 bids from 100 bidders")
    args = parser.parse_args()
    n = 1_000 if args.quick else args.bids
    n_bidders = args.bidders or max(1, n // 10)
    per_bidder = -(-n // n_bidders)
    server = common.server_url()
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith(("redis://", "amqp://")):
        sys.stderr.write("refusing to run: CELERY_BROKER_URL must name Redis or RabbitMQ\n")
        sys.exit(2)
    os.environ.setdefault("DEBUG", "0")
    os.environ["AUCTION_MAX_BIDS_PER_BIDDER"] = str(max(50, per_bidder))
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    common.isolate_queues(queue)
    name = f"bench_bluecarbon_{os.getpid()}"
    dsn = common.create_database(server, name)
    worker = None
    try:
        common.django_setup(dsn)
        common.migrate()
        from auctions import keys
        from auctions.models import Auction

        lots = n // 2  # demand (about 3 lots a bid) well above supply: a real clearing
        common.log(f"market: {n_bidders:,} approved bidders, a lot of {lots:,} t")
        seller, batch, bidders = _setup_market(n_bidders, lots)
        # Enough time to seal and load the book before the close.
        closes_in = 8 + n * 0.0006
        auction_id = _create_auction(seller, batch, lots, closes_in)
        a = Auction.objects.get(pk=auction_id)
        log_path = f"/tmp/{queue}-worker.log"
        worker = common.start_worker(dsn, queue, log_path)
        common.log(f"sealing {n:,} bids ({per_bidder} per bidder)")
        book = _seal_book(auction_id, bytes(a.public_key), bidders, n)
        common.log("loading the book (bulk, not timed)")
        _load_book(auction_id, book)
        # As in a live auction, where checkpoints follow the bids within a second.
        from ledger.services import ledger_checkpoint_issue

        ledger_checkpoint_issue()
        private = keys.open_private_key(auction_id, bytes(a.private_key_sealed))
        wait = (a.closes_at - dt.datetime.now(dt.UTC)).total_seconds()
        if wait < 1:
            sys.stderr.write("setup overran the closing time; raise closes_in\n")
            sys.exit(1)
        common.log(f"waiting {wait:.1f} s for the closing time; the worker does the rest")
        time.sleep(max(0.0, wait))
        deadline = time.monotonic() + 600
        while True:
            state = Auction.objects.filter(pk=auction_id).values_list("state", flat=True)[0]
            if state == "settled" or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        settled_at = dt.datetime.now(dt.UTC)
        if state != "settled":
            print(f"auction did not settle (state {state}); worker log: {log_path}")
            sys.exit(1)
        closed = _entry_time(auction_id, "auction.close")
        cleared = _entry_time(auction_id, "auction.clear")
        settle = _entry_time(auction_id, "auction.settle")
        total = (settle - a.closes_at).total_seconds()
        common.log("baseline: bare HPKE open of the same bids")
        bare = min(_bare_open(auction_id, private, book) for _ in range(2))
        a.refresh_from_db()
        common.log("ledger_verify (not timed)")
        from ledger.signing import trusted_verifiers
        from ledger.verify import verify_ledger

        report = verify_ledger(verifiers=trusted_verifiers())
        target = 5 if n <= 10_000 else 30
        print(
            f"auction_clearing: {n:,} sealed bids from {n_bidders:,} bidders, {lots:,} lots; "
            f"worker concurrency = default ({os.cpu_count()} CPUs)"
        )
        rows = [
            ("closing time -> close entry", f"{(closed - a.closes_at).total_seconds():.2f}"),
            ("close -> clear (open all bids, clear)", f"{(cleared - closed).total_seconds():.2f}"),
            ("clear -> settle", f"{(settle - cleared).total_seconds():.2f}"),
            ("closing time -> settled (entries)", f"{total:.2f}"),
            (
                "closing time -> settled (observed)",
                f"{(settled_at - a.closes_at).total_seconds():.2f}",
            ),
            ("baseline: bare HPKE open, one process", f"{bare:.2f}"),
        ]
        print(common.table(["", "seconds"], rows))
        print()
        print(
            f"pipeline {common.rate(n, total):,.0f} bids/s, bare open {common.rate(n, bare):,.0f} "
            f"bids/s: ratio pipeline/bare {bare / total:.3f}"
        )
        print(
            f"close-to-settled {total:.2f} s (target <= {target} s: "
            f"{'met' if total <= target else 'NOT met'}); clearing price "
            f"{a.clearing_price}, awarded {a.result['outcome']['awarded_lots']:,} lots to "
            f"{a.result['outcome']['stats']['winners']:,} bidders; ledger_verify OK over "
            f"{report.entries:,} entries"
        )
    finally:
        if worker is not None:
            common.stop_processes([worker])
        common.close_django_connections()
        common.drop_database(server, name)


if __name__ == "__main__":
    main()
