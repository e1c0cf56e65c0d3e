"""English auction under fire: ``--bidders`` bidders (default 200) bidding against each other
as fast as they can through ``POST /api/v1/auctions/{id}/raises`` for ``--seconds`` (default
60), against the README's production command (Granian) and a Celery worker on PostgreSQL and
Redis; then the time from the countdown's expiry to the award.

Setup (not timed): a scratch database; the bidders (approved, a holding account, an API key
with scope ``bid``, the 30,000 CNY deposit each); the Xiangshan lot (2,340.1 t, start 30.00
CNY/t, raises of at least 1.00 CNY/t) as an English auction whose free phase ends a second
after the bidding starts, so that almost every bid lands in the timed phase and restarts the
``--countdown`` (default 30 s: 200 bidders queue at the server, and with a 5 s countdown a bid
waited longer than that for its answer here, so the auction ended while the field was still
bidding, each bid refused ``auction_closed``; the issue's example countdown is 60 s). The web
server is the README's command with ``--server-workers`` processes of ``--threads`` threads;
one Celery worker (its default concurrency) consumes every kind of work, as in bid_intake.py;
no beat, so the end is the auction's own timer's doing (``pipeline.advance`` re-arms it at each
moved end), not the sweep's.

Bidders are threads (``--bidders`` / ``--procs`` per client process, each with its own
keep-alive connection and key): processes for all 200 would take the cores from the server on
a 2-core machine. A bidder bids the lowest valid price it knows (the last answer it or a
bidder of its process saw: its own accepted price plus the increment, or a refusal's
``minimum``), plus at most ``--jump`` increments at random (default 0). A refusal with
``already_leading`` means it stands, and it bids again at once (one more refusal, as a client
hammering the button would).

With ``--jump 0`` all bidders bid the same price at once: one is accepted per round of
answers and the others are ``bid_too_low``, so accepted bids/s measures the auction (one raise
per round trip of the whole field), not the server. ``--jump 20`` spreads the prices so that
several bids of a round are accepted in turn: closer to how many raises per second the
auction's row takes.

Phases, same clients, same server:

* baseline  ``GET /api/v1/organization`` with the same keys (authentication, routing,
            throttling and a one-row read: the floor of any authenticated call, as in
            bid_intake.py), for min(``--seconds``, 15) s;
* bidding   the raises, for ``--seconds``; then nobody bids, the countdown runs out, and the
            worker closes, clears and settles.

Printed: accepted bids/s, refusals/s by code, p50/p99 of every POST and of the accepted ones,
their ratios to the baseline's rate, and the lag of the ``auction.close`` and ``auction.settle``
(the award) entries after the final end (target: the award <= 1 s). The ledger is verified
afterwards (exit 1 if it fails, or if the auction never settles).

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
    export CELERY_BROKER_URL=redis://127.0.0.1:6379/0
    .venv/bin/python bench/english_auction.py [--bidders 200] [--seconds 60] [--countdown 30]
        [--procs 4] [--server-workers N] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid

import _common as common

from tests import server as web  # the README's production command

LOT_KG = 2_340_100  # Xiangshan's 2,340.1 t
START, STEP = 3000, 100  # 30.00 CNY/t, raises of 1.00 CNY/t
DEPOSIT = 3_000_000  # 30,000.00 CNY


def _bidders(n: int) -> list[str]:
    """``n`` approved bidders with a holding account and an API key each; their keys."""
    from auctions import services as auctions
    from ledger import services
    from ledger.actors import Actor
    from ledger.models import Role

    op = Actor.system("bench")
    keys = []
    for i in range(n):
        org = services.organization_register(
            actor=op, handle=f"bidder-{i:03d}", name=f"Bidder {i}", roles=[Role.BIDDER]
        )
        services.account_open(actor=op, organization=org.pk, name="Main")
        auctions.bidder_approve(actor=op, organization=org.pk)
        _, secret = services.apikey_create(
            organization=org.pk, name="bench", scopes=["bid", "read"]
        )
        keys.append(secret)
    return keys


def _auction(countdown: int, bidders: int) -> tuple[int, dt.datetime]:
    """The lot, open now, its free phase long enough for the deposits (5 s + 50 ms each), every
    bidder's deposit recorded. Returns its id and the end of its free phase."""
    from auctions import services as auctions
    from ledger.actors import Actor
    from ledger.models import Organization
    from tests import factories

    op = Actor.system("bench")
    world = factories.World()
    batch = world.issue(LOT_KG, share_bp=0)
    now = dt.datetime.now(dt.UTC)
    a = auctions.auction_create(
        actor=op,
        account=world.dev_account.pk,
        batch=batch.pk,
        title="Xihu Port seaweed farming sink (bench)",
        format="english",
        quantity=LOT_KG,
        lot_kg=LOT_KG,
        currency="CNY",
        tick=100,
        reserve=START,
        cap_bp=None,
        deposit_required=DEPOSIT,
        bid_guarantee=False,
        tie_rule="random_order",
        undersubscribed="cancel",
        opens_at=now,
        closes_at=now + dt.timedelta(seconds=5 + 0.05 * bidders),
        increments=[[0, STEP]],
        countdown_s=countdown,
    )
    for org in Organization.objects.filter(handle__startswith="bidder-").order_by("pk"):
        auctions.deposit_record(actor=op, auction=a.pk, bidder=org.pk, amount=DEPOSIT)
    a = auctions.auction_schedule(actor=op, auction=a.pk)
    return a.pk, a.closes_at


def _client(
    port: int,
    auction: int | None,
    keys: list[str],
    seconds: float,
    start_at: float,
    jump: int,
    out: mp.Queue,
) -> None:
    """One process of bidder threads (or of baseline readers, with ``auction`` None). Puts
    (samples, process CPU seconds): a sample is (latency, answer) with answer "accepted",
    a refusal's code, or "error <status>"."""
    known = {"minimum": START}
    lock = threading.Lock()
    samples: list[tuple[float, str]] = []
    path = f"/api/v1/auctions/{auction}/raises"

    def bidder(key: str) -> None:
        rng = random.Random(key)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        auth = {"Authorization": f"Bearer {key}"}
        conn.request("GET", "/api/v1/organization", headers=auth)  # warm, untimed
        conn.getresponse().read()
        mine: list[tuple[float, str]] = []
        while time.time() < start_at:
            time.sleep(0.005)
        end = start_at + seconds
        while time.time() < end:
            t = time.perf_counter()
            if auction is None:
                conn.request("GET", "/api/v1/organization", headers=auth)
            else:
                price = known["minimum"] + STEP * rng.randint(0, jump)
                body = json.dumps({"price": f"{price // 100}.{price % 100:02d}"})
                conn.request(
                    "POST", path, body=body, headers={**auth, "Content-Type": "application/json"}
                )
            r = conn.getresponse()
            data = r.read()
            took = time.perf_counter() - t
            if auction is None:
                mine.append((took, "accepted" if r.status == 200 else f"error {r.status}"))
                continue
            if r.status == 201:
                answer = "accepted"
                with lock:
                    known["minimum"] = max(known["minimum"], price + STEP)
            elif r.status in (409, 422):
                error = json.loads(data)
                answer = error.get("code", f"error {r.status}")
                minimum = (error.get("detail") or {}).get("minimum")
                if isinstance(minimum, int):
                    with lock:
                        known["minimum"] = max(known["minimum"], minimum)
            else:
                answer = f"error {r.status}"
            mine.append((took, answer))
        conn.close()
        with lock:
            samples.extend(mine)

    cpu = time.process_time()
    threads = [threading.Thread(target=bidder, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((samples, time.process_time() - cpu))


def _phase(
    port: int, auction: int | None, groups: list[list[str]], seconds: float, jump: int = 0
) -> dict:
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    start_at = time.time() + 3.0
    procs = [
        ctx.Process(target=_client, args=(port, auction, keys, seconds, start_at, jump, out))
        for keys in groups
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 180) for _ in procs]
    for p in procs:
        p.join()
    samples = [s for r in results for s in r[0]]

    def pct(latencies: list[float], p: float) -> float:
        latencies = sorted(latencies)
        return (
            latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else 0
        )

    answers: dict[str, int] = {}
    for _, answer in samples:
        answers[answer] = answers.get(answer, 0) + 1
    every = [lat for lat, _ in samples]
    accepted = [lat for lat, a in samples if a == "accepted"]
    return {
        "n": len(samples),
        "rate": common.rate(len(samples), seconds),
        "accepted": common.rate(len(accepted), seconds),
        "answers": answers,
        "p50": pct(every, 0.5),
        "p99": pct(every, 0.99),
        "accepted_p50": pct(accepted, 0.5),
        "accepted_p99": pct(accepted, 0.99),
        "client_cpu_ms": sum(r[1] for r in results) * 1000 / max(1, len(samples)),
    }


def _entry_time(auction: int, type: str) -> dt.datetime | None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT body FROM ledger_ledgerentry WHERE type = %s ORDER BY seq", [type])
        for (body,) in cursor.fetchall():
            entry = json.loads(bytes(body))
            if entry["data"].get("auction") == auction:
                return dt.datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bidders", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60, help="how long they bid")
    parser.add_argument("--countdown", type=int, default=30, help="the rules' countdown, s")
    parser.add_argument(
        "--jump",
        type=int,
        default=0,
        help="bid up to this many increments over the lowest valid price, at random (default 0: "
        "the lowest valid price, as Xiangshan's bidders did)",
    )
    parser.add_argument("--procs", type=int, default=4, help="client processes (bidder threads)")
    parser.add_argument(
        "--server-workers",
        type=int,
        default=os.cpu_count() or 2,
        help="Granian worker processes (default: one per core)",
    )
    parser.add_argument("--threads", type=int, default=1, help="Granian blocking threads/worker")
    parser.add_argument(
        "--quick", action="store_true", help="CI: 50 bidders, 8 s, a 10 s countdown"
    )
    args = parser.parse_args()
    if args.quick:
        args.bidders, args.seconds, args.countdown = 50, 8.0, 10
    server = common.server_url()
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith(("redis://", "amqp://")):
        sys.stderr.write("refusing to run: CELERY_BROKER_URL must name Redis or RabbitMQ\n")
        sys.exit(2)
    os.environ.setdefault("DEBUG", "0")
    os.environ["API_RATE"] = "1000000/min"  # the throttle is not what is measured
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    common.isolate_queues(queue)
    name = f"bench_bluecarbon_english_{os.getpid()}"
    dsn = common.create_database(server, name)
    procs: list[subprocess.Popen] = []
    failed = False
    try:
        common.django_setup(dsn)
        common.migrate()
        common.log(f"setting up {args.bidders} bidders")
        keys = _bidders(args.bidders)
        groups = [keys[i :: args.procs] for i in range(args.procs)]
        common.close_django_connections()
        env = dict(os.environ, DATABASE_URL=dsn, PYTHONUNBUFFERED="1")
        port = web.free_port()
        log = open(f"/tmp/{queue}-server.log", "wb")  # noqa: SIM115 (the server's lifetime)
        procs.append(
            subprocess.Popen(
                web.readme_command(
                    port, workers=str(args.server_workers), blocking_threads=str(args.threads)
                ),
                cwd=common.PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        procs.append(common.start_worker(dsn, queue, f"/tmp/{queue}-worker.log"))
        for _ in range(150):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        base_seconds = min(args.seconds, 15.0)
        common.log(
            f"baseline: {args.bidders} clients, GET /api/v1/organization, {base_seconds:.0f} s"
        )
        base = _phase(port, None, groups, base_seconds)
        auction, free_ends = _auction(args.countdown, args.bidders)
        common.close_django_connections()
        # The bidding starts a second before the free phase ends (the phase takes ~3 s to
        # start its clients): almost every bid restarts the countdown.
        lead = (free_ends - dt.datetime.now(dt.UTC)).total_seconds() - 3.0 - 1.0
        if lead > 0:
            time.sleep(lead)
        common.log(f"bidding: {args.bidders} bidders, POST raises, {args.seconds:.0f} s")
        bidding = _phase(port, auction, groups, args.seconds, args.jump)
        from auctions.models import Auction

        settled_by = time.time() + 60 + args.countdown
        while time.time() < settled_by:
            state = Auction.objects.filter(pk=auction).values_list("state", flat=True)[0]
            if state in ("settled", "cancelled", "failed"):
                break
            common.close_django_connections()
            time.sleep(0.2)
        a = Auction.objects.get(pk=auction)
        close_at, award_at = (
            _entry_time(auction, "auction.close"),
            _entry_time(auction, "auction.settle"),
        )
        ends_at = a.bidding_ends_at
        common.close_django_connections()
        answers = bidding["answers"]
        refused = {k: v for k, v in answers.items() if k != "accepted"}
        print(
            f"english_auction: {args.bidders} bidders in {args.procs} client processes, "
            f"Granian {args.server_workers} workers x {args.threads} threads + a Celery worker, "
            f"PostgreSQL, {os.cpu_count()} cores, bidding {args.seconds:.0f} s, countdown "
            f"{args.countdown} s, jumps of up to {args.jump} increments"
        )
        rows = [
            (
                "baseline: authenticated GET",
                f"{base['n']:,}",
                f"{base['rate']:,.0f}",
                f"{base['p50']:.1f}",
                f"{base['p99']:.1f}",
            ),
            (
                "bidding: every POST raise",
                f"{bidding['n']:,}",
                f"{bidding['rate']:,.0f}",
                f"{bidding['p50']:.1f}",
                f"{bidding['p99']:.1f}",
            ),
            (
                "bidding: accepted bids",
                f"{answers.get('accepted', 0):,}",
                f"{bidding['accepted']:,.1f}",
                f"{bidding['accepted_p50']:.1f}",
                f"{bidding['accepted_p99']:.1f}",
            ),
        ]
        for code, n in sorted(refused.items(), key=lambda kv: -kv[1]):
            rows.append((f"bidding: refused {code}", f"{n:,}", f"{n / args.seconds:,.1f}", "", ""))
        print(common.table(["", "requests", "per s", "p50 ms", "p99 ms"], rows))
        print(f"client CPU ms per request: {bidding['client_cpu_ms']:.2f}")
        print()
        print(
            f"ratio POST raise/baseline GET: {bidding['rate'] / base['rate']:.3f}; "
            f"accepted bids/baseline GET: {bidding['accepted'] / base['rate']:.3f}"
        )
        print(
            f"final standing price {a.standing_price / 100:,.2f} CNY/t after "
            f"{answers.get('accepted', 0):,} bids; state {a.state}"
        )
        verdict = {True: "met", False: "NOT met"}
        if award_at is None or close_at is None:
            print(f"the auction did not settle within 60 s of its end (state {a.state})")
            failed = True
        else:
            close_lag = (close_at - ends_at).total_seconds()
            award_lag = (award_at - ends_at).total_seconds()
            print(
                f"countdown expiry -> auction.close {close_lag:.3f} s, -> auction.settle (the "
                f"award) {award_lag:.3f} s (target <= 1 s: {verdict[award_lag <= 1.0]})"
            )
        errors = {
            k: v
            for k, v in refused.items()
            if k.startswith("error")
            or k
            not in (
                "bid_too_low",
                "already_leading",
            )
        }
        if errors:
            print(f"unexpected answers while bidding: {errors}")
            failed = True
        from ledger.signing import trusted_verifiers
        from ledger.verify import verify_ledger

        t = time.perf_counter()
        verify_ledger(verifiers=trusted_verifiers())
        print(f"ledger verified ({time.perf_counter() - t:.1f} s)")
    finally:
        common.stop_processes(procs)
        common.close_django_connections()
        common.drop_database(server, name)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
