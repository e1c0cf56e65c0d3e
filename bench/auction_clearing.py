"""Close, open, clear and settle a sealed-bid auction through a real Celery worker, vs the bare
opening of the same bids, measured in the same run.

Setup (not timed): a scratch PostgreSQL database; a seller holding the lot; ``--bidders``
approved bidders; ``--trustees`` trustee organizations (default 3), each with a seed it derives
its keys from (as ``bluecarbon-audit trustee`` does) and one key registered; a uniform-price
auction of ``--bids`` / 2 lots of 1 t sealed to them with threshold ``--threshold`` (default
2; ``--operator-key``: to a key the operator holds instead); ``--bids`` sealed bids (the Python
client, ``seal_threshold``, one to three tiers each, spread evenly over the bidders, sealed in
a process per core) loaded in bulk: the same Bid rows and ``bid.submit`` entries
``auctions.services.bid_submit`` writes (without its receipts, which are not ledger state),
chained and appended by COPY. A Celery worker process (default concurrency, Redis from
``CELERY_BROKER_URL``) is started and left to act on its own: the ETA task at the closing time
starts the pipeline. Once the close entry is written the benchmark releases the first k
trustees' keys (``trustee_release``, what each trustee's API call does), and the release of
the k-th moves the auction on.

Measured: from the closing time until the auction is settled (polled every 20 ms), with the
time of each step taken from its ledger entry (close, each key release, clear, settle).
Baseline, same run: one process opening the same ciphertexts in a bare loop (trustees: the k
share boxes and the body with ``cryptography``'s HPKE and the shares combined; operator key:
the HPKE open). Afterwards (not timed) ``ledger_verify`` re-runs the whole auction from the
ledger, every bid reopened.

Targets (issue 13): trustees, 10,000 bids from 1,000 bidders settled at most 5 s after the
k-th release; 100,000 bids at most 30 s. (Issue 10, operator key: from the closing time, the
same 5 s and 30 s.)

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
    export CELERY_BROKER_URL=redis://127.0.0.1:6379/0
    .venv/bin/python bench/auction_clearing.py [--bids 10000 --bidders 1000] [--quick]
        [--trustees 3 --threshold 2 | --operator-key]
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
from concurrent.futures import ProcessPoolExecutor
from typing import Any

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


def _setup_trustees(n: int) -> list[tuple[int, str, bytes]]:
    """Trustee organizations (id, handle, seed), each with its key 0 registered."""
    from bluecarbon_audit.auctions import trustee_keys
    from django.db import transaction

    from auctions import trustees
    from ledger import services
    from ledger.actors import Actor
    from ledger.models import Role

    board = []
    with transaction.atomic():
        for i in range(n):
            org = services.organization_register(
                actor=Actor.system("bench"),
                handle=f"trustee-{i}",
                name=f"Trustee {i}",
                roles=[Role.TRUSTEE],
            )
            seed = trustee_keys.new_seed()
            trustees.trustee_keys_register(
                actor=Actor(f"org:{org.handle}", org.pk),
                public_keys=[trustee_keys.public_key(seed, 0)],
            )
            board.append((org.pk, org.handle, seed))
    return board


def _create_auction(
    seller: int, batch: int, lots: int, closes_in: float, sealed: dict[str, Any]
) -> int:
    from auctions import services as auctions
    from tests import factories

    now = dt.datetime.now(dt.UTC)
    if sealed:
        sealed = {**sealed, "release_by": now + dt.timedelta(seconds=closes_in + 3600)}
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
        **sealed,
    )
    auctions.auction_schedule(actor=factories.OPERATOR, auction=a.pk)
    return a.pk


def _seal_chunk(job: tuple[dict[str, Any], list[tuple[int, list[dict[str, int]]]]]) -> list[bytes]:
    """Seal (bidder, tiers) pairs as a bidder's client does (in a pool process: no Django)."""
    from bluecarbon_audit.auctions import sealing

    how, bids = job
    if how["trustee_keys"]:
        return [
            sealing.seal_threshold(
                trustee_keys=how["trustee_keys"],
                threshold=how["threshold"],
                origin=how["origin"],
                auction=how["auction"],
                bidder=bidder,
                tiers=tiers,
            )
            for bidder, tiers in bids
        ]
    return [
        sealing.seal(
            public_key=how["public_key"],
            origin=how["origin"],
            auction=how["auction"],
            bidder=bidder,
            tiers=tiers,
        )
        for bidder, tiers in bids
    ]


def _seal_seconds_per_bid(trustees: int, sample: int = 2000) -> float:
    """Seconds a bid takes to seal with the pool ``_seal_book`` uses, from a sample."""
    from bluecarbon_audit.auctions import sealing

    keys = [sealing.public_key_of(sealing.generate_private_key()) for _ in range(trustees or 1)]
    how = {
        "origin": "bench",
        "auction": 1,
        "threshold": max(1, trustees - 1),
        "trustee_keys": keys if trustees else [],
        "public_key": keys[0],
    }
    bids = [(1, [{"price": 3000, "lots": 1}])] * (sample // 4)
    common.close_django_connections()  # not shared with the forked sealers
    started = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_seal_chunk, [(how, bids)] * 4))
    return (time.perf_counter() - started) / sample


def _seal_book(a, bidders, n: int) -> list[tuple]:
    from django.conf import settings

    from auctions import trustees

    rng = random.Random(7)
    plain = []
    for i in range(n):
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
        plain.append((bidders[i % len(bidders)][0], uniq))
    how = {
        "origin": settings.LEDGER_ORIGIN,
        "auction": a.pk,
        "threshold": a.threshold,
        "trustee_keys": [bytes(k.public_key) for k in trustees.auction_keys(a)],
        "public_key": bytes(a.public_key) if a.public_key is not None else None,
    }
    size = 1000
    chunks = [(how, plain[i : i + size]) for i in range(0, n, size)]
    common.close_django_connections()  # not shared with the forked sealers
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        sealed = [ct for chunk in pool.map(_seal_chunk, chunks) for ct in chunk]
    # (bidder, account, handle, ciphertext)
    return [(*bidders[i % len(bidders)], ct) for i, ct in enumerate(sealed)]


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
    """Seconds to HPKE-open every ciphertext in one process (the baseline, operator key)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from django.conf import settings

    from auctions.core import sealing

    key = X25519PrivateKey.from_private_bytes(private)
    origin = settings.LEDGER_ORIGIN
    started = time.perf_counter()
    for bidder, _, _, ct in book:
        sealing.SUITE.decrypt(ct, key, info=sealing.info(origin, auction_id, bidder))
    return time.perf_counter() - started


def _bare_threshold_open(
    auction_id: int, released: dict[int, bytes], trustees: int, book: list[tuple]
) -> float:
    """Seconds to open every ciphertext with the released keys in one process (the baseline,
    trustees): the k share boxes and the body by HPKE, the shares combined (by tables, as the
    opening does once the keys are public); no checks."""
    from bluecarbon_audit.auctions import shamir
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from django.conf import settings

    from auctions.core import sealing

    keys = {p: X25519PrivateKey.from_private_bytes(k) for p, k in sorted(released.items())}
    origin, box = settings.LEDGER_ORIGIN, sealing.SHARE_BOX
    started = time.perf_counter()
    for bidder, _, _, ct in book:
        shares = [
            sealing.SUITE.decrypt(
                ct[box * (p - 1) : box * p],
                key,
                info=sealing.share_info(origin, auction_id, bidder, p),
            )
            for p, key in keys.items()
        ]
        bid_key = X25519PrivateKey.from_private_bytes(shamir.combine_released(shares))
        sealing.SUITE.decrypt(
            ct[box * trustees :], bid_key, info=sealing.info(origin, auction_id, bidder)
        )
    return time.perf_counter() - started


def _release(auction_id: int, board: list[tuple[int, str, bytes]], k: int) -> dict[int, bytes]:
    """The first k trustees release their key for the auction, as each would through the API."""
    from bluecarbon_audit.auctions import trustee_keys

    from auctions import trustees
    from ledger.actors import Actor

    released = {}
    for org, handle, seed in board[:k]:
        key = trustees.trustee_release(
            actor=Actor(f"org:{handle}", org),
            auction=auction_id,
            private_key=trustee_keys.private_key(seed, 0),
        )
        assert key.position is not None
        released[key.position] = trustee_keys.private_key(seed, 0)
    return released


def _entry_time(auction_id: int, type: str) -> dt.datetime | None:
    """The time of the auction's latest entry of this type."""
    from ledger.core.entry import decode_entry
    from ledger.models import LedgerEntry

    for (body,) in LedgerEntry.objects.filter(type=type).order_by("-seq").values_list("body")[:20]:
        e = decode_entry(bytes(body))
        if e.data.get("auction") == auction_id:
            return dt.datetime.fromisoformat(e.time.replace("Z", "+00:00"))
    return None


def _wait_for(auction_id: int, states: tuple[str, ...], seconds: float) -> str:
    from auctions.models import Auction

    deadline = time.monotonic() + seconds
    while True:
        state = Auction.objects.filter(pk=auction_id).values_list("state", flat=True)[0]
        if state in states or time.monotonic() > deadline:
            return state
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bids", type=int, default=10_000)
    parser.add_argument("--bidders", type=int, default=None, help="default bids / 10")
    parser.add_argument("--quick", action="store_true", help="CI: 1,000 bids from 100 bidders")
    parser.add_argument("--trustees", type=int, default=3, help="n (default 3)")
    parser.add_argument("--threshold", type=int, default=2, help="k (default 2)")
    parser.add_argument(
        "--operator-key", action="store_true", help="seal to a key the operator holds instead"
    )
    args = parser.parse_args()
    n = 1_000 if args.quick else args.bids
    n_bidders = args.bidders or max(1, n // 10)
    per_bidder = -(-n // n_bidders)
    by_trustees = not args.operator_key
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
        board = _setup_trustees(args.trustees) if by_trustees else []
        sealed: dict[str, Any] = (
            {
                "sealing_mode": "trustees",
                "trustee_ids": [org for org, _, _ in board],
                "threshold": args.threshold,
            }
            if by_trustees
            else {}
        )
        # Enough time to seal and load the book before the close, on this machine now: twice
        # what a sample takes to seal, and about a millisecond a bid to load.
        closes_in = 15 + n * 2 * (
            _seal_seconds_per_bid(args.trustees if by_trustees else 0) + 0.001
        )
        auction_id = _create_auction(seller, batch, lots, closes_in, sealed)
        a = Auction.objects.get(pk=auction_id)
        log_path = f"/tmp/{queue}-worker.log"
        worker = common.start_worker(dsn, queue, log_path)
        how = f"{args.threshold} of {args.trustees} trustees" if by_trustees else "operator key"
        common.log(f"sealing {n:,} bids ({per_bidder} per bidder) to the {how}")
        book = _seal_book(a, bidders, n)
        common.log("loading the book (bulk, not timed)")
        _load_book(auction_id, book)
        # As in a live auction, where checkpoints follow the bids within a second.
        from ledger.services import ledger_checkpoint_issue

        ledger_checkpoint_issue()
        wait = (a.closes_at - dt.datetime.now(dt.UTC)).total_seconds()
        if wait < 1:
            sys.stderr.write("setup overran the closing time; raise closes_in\n")
            sys.exit(1)
        common.log(f"waiting {wait:.1f} s for the closing time; the worker does the rest")
        time.sleep(max(0.0, wait))
        load_before = os.getloadavg()
        released: dict[int, bytes] = {}
        if by_trustees:
            state = _wait_for(auction_id, ("closing",), 600)
            if state != "closing":
                print(f"auction did not close (state {state}); worker log: {log_path}")
                sys.exit(1)
            released = _release(auction_id, board, args.threshold)
        state = _wait_for(auction_id, ("settled",), 600)
        settled_at = dt.datetime.now(dt.UTC)
        load_after = os.getloadavg()
        if state != "settled":
            print(f"auction did not settle (state {state}); worker log: {log_path}")
            sys.exit(1)
        closed = _entry_time(auction_id, "auction.close")
        kth = _entry_time(auction_id, "auction.key_release") if by_trustees else closed
        cleared = _entry_time(auction_id, "auction.clear")
        settle = _entry_time(auction_id, "auction.settle")
        assert closed and kth and cleared and settle
        total = (settle - a.closes_at).total_seconds()
        after_release = (settle - kth).total_seconds()
        if by_trustees:
            common.log("baseline: bare threshold opening of the same bids")
            bare = min(
                _bare_threshold_open(auction_id, released, args.trustees, book) for _ in range(2)
            )
        else:
            common.log("baseline: bare HPKE open of the same bids")
            private = keys.open_private_key(auction_id, bytes(a.private_key_sealed))
            bare = min(_bare_open(auction_id, private, book) for _ in range(2))
        a.refresh_from_db()
        common.log("ledger_verify (not timed)")
        from ledger.signing import trusted_verifiers
        from ledger.verify import verify_ledger

        report = verify_ledger(verifiers=trusted_verifiers())
        target = 5 if n <= 10_000 else 30
        print(
            f"auction_clearing: {n:,} sealed bids from {n_bidders:,} bidders, {lots:,} lots, "
            f"sealed to the {how}; worker concurrency = default ({os.cpu_count()} CPUs); "
            f"load average {load_before[0]:.2f} at the close, {load_after[0]:.2f} settled"
        )
        rows = [("closing time -> close entry", f"{(closed - a.closes_at).total_seconds():.2f}")]
        if by_trustees:
            rows += [
                (
                    f"close -> k-th key released (k = {args.threshold})",
                    f"{(kth - closed).total_seconds():.2f}",
                ),
                (
                    "key released -> clear (open all bids, clear)",
                    f"{(cleared - kth).total_seconds():.2f}",
                ),
            ]
        else:
            rows.append(
                (
                    "close -> clear (open all bids, clear)",
                    f"{(cleared - closed).total_seconds():.2f}",
                )
            )
        rows += [
            ("clear -> settle", f"{(settle - cleared).total_seconds():.2f}"),
            ("closing time -> settled (entries)", f"{total:.2f}"),
            (
                "closing time -> settled (observed)",
                f"{(settled_at - a.closes_at).total_seconds():.2f}",
            ),
        ]
        if by_trustees:
            rows.append(("k-th key released -> settled (entries)", f"{after_release:.2f}"))
        baseline = "threshold opening" if by_trustees else "HPKE open"
        rows.append((f"baseline: bare {baseline}, one process", f"{bare:.2f}"))
        print(common.table(["", "seconds"], rows))
        print()
        timed, what = (after_release, "k-th release") if by_trustees else (total, "closing time")
        print(
            f"pipeline {common.rate(n, timed):,.0f} bids/s, bare opening "
            f"{common.rate(n, bare):,.0f} bids/s: ratio pipeline/bare {bare / timed:.3f}"
        )
        print(
            f"{what} to settled {timed:.2f} s (target <= {target} s: "
            f"{'met' if timed <= target else 'NOT met'}); clearing price "
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
