"""Sealed-bid intake through the HTTP API on PostgreSQL: ``--clients`` concurrent clients
POSTing sealed bids to the production web server, vs the same clients doing a bare authenticated
round trip to the same server, measured in the same run.

Setup (not timed): a scratch database; an open auction; approved bidders with API keys
(scope ``bid``), each sending at most 40 bids; every bid sealed in advance with the Python
HPKE client (the client's own cost is not the server's). The web server is started with the
README's production command (Granian; ``--server-workers`` processes of ``--threads`` threads
in place of its counts), and a Celery worker (signing checkpoints, as in production), on the
same machine. Each client is a process with
one keep-alive connection.

Besides rates and latencies it prints the CPU each part spent per request (web server,
database server, Celery worker, clients; from /proc): on a machine this small the parts share
the cores, so their sum per bid is what bounds the rate.

Phases, same clients, same server:

* baseline   ``GET /api/v1/organization`` with the same keys: authentication, routing,
             throttling and a one-row read, the floor of any authenticated call;
* intake     ``POST /api/v1/auctions/{id}/bids`` with a fresh ciphertext each time: the
             service (shared auction lock, bidder lock, insert, ledger append) and the
             receipt signed with the receipt key, each in its own transaction.

Targets (issue): at least 300 bids/s with 16 clients, p99 under 200 ms.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
    export CELERY_BROKER_URL=redis://127.0.0.1:6379/0
    .venv/bin/python bench/bid_intake.py [--clients 16] [--seconds 15] [--server-workers N]
        [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
import uuid

import _common as common

from tests import server as web  # the README's production command

# Each bidder stays well under its 50 standing bids.
BIDS_PER_BIDDER = 40


def _setup(clients: int, bids_per_client: int) -> tuple[int, list[list[tuple[str, str]]]]:
    """The auction, and per client a list of (api key, sealed bid body) to send."""
    from django.conf import settings

    from auctions import services as auctions
    from auctions.core import sealing
    from ledger import services
    from ledger.actors import Actor
    from ledger.models import Role
    from tests import factories

    op = Actor.system("bench")
    world = factories.World()
    batch = world.issue(1_000_000 * 1000, share_bp=0)
    now = dt.datetime.now(dt.UTC)
    a = auctions.auction_create(
        actor=op,
        account=world.dev_account.pk,
        batch=batch.pk,
        title="bench intake",
        format="uniform",
        quantity=100_000 * 1000,
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
        closes_at=now + dt.timedelta(hours=2),
    )
    a = auctions.auction_schedule(actor=op, auction=a.pk)
    plan: list[list[tuple[str, str]]] = []
    for c in range(clients):
        keys = []
        for b in range(-(-bids_per_client // BIDS_PER_BIDDER)):
            org = services.organization_register(
                actor=op, handle=f"bidder-{c:02d}-{b:03d}", name="Bidder", roles=[Role.BIDDER]
            )
            services.account_open(actor=op, organization=org.pk, name="Main")
            auctions.bidder_approve(actor=op, organization=org.pk)
            _, secret = services.apikey_create(
                organization=org.pk, name="bench", scopes=["bid", "read"]
            )
            keys.append((org.pk, secret))
        bodies = []
        for i in range(bids_per_client):
            org, secret = keys[i % len(keys)]
            ct = sealing.seal(
                public_key=bytes(a.public_key),
                origin=settings.LEDGER_ORIGIN,
                auction=a.pk,
                bidder=org,
                tiers=[{"price": 3000 + 100 * (i % 50), "lots": 1 + i % 7}],
            )
            bodies.append((secret, json.dumps({"ciphertext": base64.b64encode(ct).decode()})))
        plan.append(bodies)
    return a.pk, plan


def _client(
    port: int,
    path: str,
    work: list[tuple[str, str]],
    method: str,
    seconds: float,
    start_at: float,
    out: mp.Queue,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, errors, samples = [], 0, []
    # Warm the connection (and the server worker's imports) untimed.
    conn.request("GET", "/api/v1/organization", headers={"Authorization": f"Bearer {work[0][0]}"})
    conn.getresponse().read()
    while time.time() < start_at:
        time.sleep(0.001)
    end = start_at + seconds
    cpu = time.process_time()
    i = 0
    while time.time() < end and i < len(work):
        secret, body = work[i]
        i += 1
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        t = time.perf_counter()
        conn.request(method, path, body=body if method == "POST" else None, headers=headers)
        r = conn.getresponse()
        data = r.read()
        latencies.append(time.perf_counter() - t)
        if r.status not in (200, 201):
            errors += 1
            if len(samples) < 3:
                samples.append(f"{r.status} {data[:200]!r}")
    out.put((latencies, errors, samples, i < len(work), time.process_time() - cpu))


def _phase(port: int, path: str, plan, method: str, seconds: float, sessions) -> dict:
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    start_at = time.time() + 2.0
    procs = [
        ctx.Process(target=_client, args=(port, path, work, method, seconds, start_at, out))
        for work in plan
    ]
    for p in procs:
        p.start()
    while time.time() < start_at:
        time.sleep(0.001)
    before = common.cpu_seconds_by_session(sessions, {"database": "postgres"})
    results = [out.get(timeout=seconds + 120) for _ in procs]
    after = common.cpu_seconds_by_session(sessions, {"database": "postgres"})
    for p in procs:
        p.join()
    latencies = sorted(x for r in results for x in r[0])
    elapsed = seconds if all(r[3] for r in results) else max(sum(r[0]) for r in results)
    return {
        "n": len(latencies),
        "rate": common.rate(len(latencies), elapsed),
        "p50": latencies[len(latencies) // 2] * 1000 if latencies else 0,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0,
        "errors": sum(r[1] for r in results),
        "samples": [s for r in results for s in r[2]][:3],
        # CPU milliseconds per request, by part (clients: their own loops' process time).
        "cpu_ms": {
            **{k: (after[k] - before[k]) * 1000 / max(1, len(latencies)) for k in after},
            "clients": sum(r[4] for r in results) * 1000 / max(1, len(latencies)),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument(
        "--server-workers",
        type=int,
        default=os.cpu_count() or 2,
        help="Granian worker processes (default: one per core, measured best on 2 cores)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="Granian blocking threads per worker (1 measured best; 2 and 4 cost 7%% and 19%%)",
    )
    parser.add_argument("--quick", action="store_true", help="CI: 4 s per phase")
    args = parser.parse_args()
    seconds = 4.0 if args.quick else args.seconds
    server = common.server_url()
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith(("redis://", "amqp://")):
        sys.stderr.write("refusing to run: CELERY_BROKER_URL must name Redis or RabbitMQ\n")
        sys.exit(2)
    os.environ.setdefault("DEBUG", "0")
    os.environ["API_RATE"] = "1000000/min"  # the throttle is not what is measured
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    common.isolate_queues(queue)
    name = f"bench_bluecarbon_{os.getpid()}"
    dsn = common.create_database(server, name)
    procs: list[subprocess.Popen] = []
    try:
        common.django_setup(dsn)
        common.migrate()
        per_client = int(600 * seconds / args.clients) + 50  # more than the target needs
        bidders = args.clients * -(-per_client // BIDS_PER_BIDDER)
        common.log(f"setting up {bidders} bidders, sealing {args.clients * per_client:,} bids")
        auction_id, plan = _setup(args.clients, per_client)
        common.close_django_connections()
        env = dict(os.environ, DATABASE_URL=dsn, PYTHONUNBUFFERED="1")
        port = web.free_port()
        log = open(f"/tmp/{queue}-server.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                # The README's production command, with this run's process and thread counts.
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
        sessions = {"server": procs[0].pid, "worker": procs[1].pid}
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        common.log(f"baseline: {args.clients} clients, GET /api/v1/organization, {seconds:.0f} s")
        base = _phase(port, "/api/v1/organization", plan, "GET", seconds, sessions)
        common.log(f"intake: {args.clients} clients, POST sealed bids, {seconds:.0f} s")
        intake = _phase(
            port, f"/api/v1/auctions/{auction_id}/bids", plan, "POST", seconds, sessions
        )
        rows = [
            (
                "baseline: authenticated GET",
                f"{base['n']:,}",
                f"{base['rate']:,.0f}",
                f"{base['p50']:.1f}",
                f"{base['p99']:.1f}",
                base["errors"],
            ),
            (
                "intake: POST sealed bid",
                f"{intake['n']:,}",
                f"{intake['rate']:,.0f}",
                f"{intake['p50']:.1f}",
                f"{intake['p99']:.1f}",
                intake["errors"],
            ),
        ]
        print(
            f"bid_intake: {args.clients} clients, Granian {args.server_workers} workers x "
            f"{args.threads} threads + a Celery worker, PostgreSQL, {seconds:.0f} s per phase"
        )
        print(common.table(["", "requests", "per s", "p50 ms", "p99 ms", "errors"], rows))
        print()
        parts = ["server", "database", "worker", "clients"]
        cpu_rows = [
            (label, *(f"{r['cpu_ms'][k]:.2f}" for k in parts), f"{sum(r['cpu_ms'].values()):.2f}")
            for label, r in (("baseline", base), ("intake", intake))
        ]
        print(f"CPU ms per request, by part ({os.cpu_count()} cores):")
        print(common.table(["", *parts, "total"], cpu_rows))
        print()
        print(f"ratio intake/baseline: {intake['rate'] / base['rate']:.3f}")
        ok_rate, ok_p99 = intake["rate"] >= 300, intake["p99"] < 200
        verdict = {True: "met", False: "NOT met"}
        print(
            f"intake {intake['rate']:,.0f} bids/s (target >= 300: {verdict[ok_rate]}), "
            f"p99 {intake['p99']:.0f} ms (target < 200: {verdict[ok_p99]})"
        )
        for s in base["samples"] + intake["samples"]:
            print("error sample:", s)
        if intake["errors"] or base["errors"]:
            sys.exit(1)
    finally:
        common.stop_processes(procs)
        common.close_django_connections()
        common.drop_database(server, name)


if __name__ == "__main__":
    main()
