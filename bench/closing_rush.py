"""Closing rush: bidders sealing bids in an auction's last minute while others browse and
webhooks deliver to a slow receiver, against the README's production deployment on one machine.

Setup (not timed): a scratch PostgreSQL database; an auction that closes ``--rush`` seconds
after the rush starts; ``--bidders`` bidding clients, each bidding for enough approved bidders
(a bidder holds at most 50 standing bids) never to run out, every bid sealed in advance with the
Python HPKE client; each bidder registers a webhook endpoint through the API, on a receiver on
loopback that takes ``--receiver-delay`` seconds per delivery. Started as the README says: the
web server (``python -m bluecarbon.serve ...``), one Celery worker per line of the README's
worker block (its queues, its options), and one beat.

The rush, all at once, until the close and ``--after`` seconds past it:

* bidders  one process per client, one keep-alive connection, ``POST /api/v1/auctions/{id}/bids``
           back to back (a bid answered 409 after the close is the close working, not an error);
* browsers ``--browsers`` people walking the portal and the public API (``--think`` seconds on
           each page): the home page, the auction list and the auction's page, the registry,
           the ledger feed, the checkpoint;
* transfers a registry's client, ``POST /api/v1/transfers`` at ``--transfers`` per second, from
           the developer's account to each bidder's in turn;
* webhooks each transfer's entry is a delivery to its recipient's endpoint, answered slowly.
           (A bid's entry names a pseudonym until the close, issue 13, so it is no delivery
           to anyone: the transfers are what make the webhook traffic during the rush.)

Reported: requests, rate, p50/p95/p99 and answers by status class for each kind, the close's
lag (the ``auction.close`` entry's time minus the auction's closing time), and the webhook
deliveries made during the load, sent during it, and still pending at its end.

The load generator is one process per client with one keep-alive connection, each sending its
next request when the last is answered (closed loop, as locust's users are), forked before the
rush so that no client waits on another's interpreter lock.

Targets (issue 14, on this 2-core machine): zero 5xx, bid p99 < 300 ms, the auction closed
within 2 s of its time. A missed target is printed, the exit status stays 0; a failed setup or
an auction that never closes exits 1.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
    export CELERY_BROKER_URL=redis://127.0.0.1:6379/0
    .venv/bin/python bench/closing_rush.py [--bidders 32] [--browsers 16] [--think 1]
        [--rush 60] [--quick]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import http.server
import json
import multiprocessing as mp
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import _common as common

from tests import server as web  # the README's production command

BIDS_PER_BIDDER = 45  # under the 50 standing bids a bidder may have


def _readme_workers() -> list[list[str]]:
    """The README's ``celery -A bluecarbon worker`` lines, as argv (comments dropped)."""
    text = (common.PROJECT_ROOT / "README.md").read_text()
    lines = re.findall(r"^ {4}(celery -A bluecarbon worker .*?)\s*(?:#.*)?$", text, re.M)
    if not lines:
        raise SystemExit("README.md shows no celery worker command")
    return [shlex.split(line) for line in lines]


def _setup(
    clients: int, bids_per_client: int, closes_at: dt.datetime
) -> tuple[int, list[list[tuple[str, str]]], list[str], tuple[str, int, int, list[int]]]:
    """The auction, per client its (api key, sealed bid body) list (a client bids for several
    bidders: a bidder may hold at most 50 standing bids), one key per bidder, and what the
    transferring client needs (the developer's key, the batch, its account, the bidders')."""
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
    per_client = -(-bids_per_client // BIDS_PER_BIDDER)
    keys: list[list[tuple[int, str]]] = []
    recipients: list[int] = []
    for c in range(clients):
        mine = []
        for b in range(per_client):
            org = services.organization_register(
                actor=op,
                handle=f"rush-{c:03d}-{b:03d}",
                name=f"Bidder {c}.{b}",
                roles=[Role.BIDDER],
            )
            recipients.append(services.account_open(actor=op, organization=org.pk, name="Main").pk)
            auctions.bidder_approve(actor=op, organization=org.pk)
            # ``read``: each bidder also registers a webhook endpoint for its own entries.
            _, secret = services.apikey_create(
                organization=org.pk, name="rush", scopes=["bid", "read"]
            )
            mine.append((org.pk, secret))
        keys.append(mine)
    a = auctions.auction_create(
        actor=op,
        account=world.dev_account.pk,
        batch=batch.pk,
        title="closing rush",
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
        opens_at=dt.datetime.now(dt.UTC),
        closes_at=closes_at,
    )
    a = auctions.auction_schedule(actor=op, auction=a.pk)
    plan = []
    for mine in keys:
        bodies = []
        for i in range(bids_per_client):
            org, secret = mine[i % len(mine)]
            ct = sealing.seal(
                public_key=bytes(a.public_key),
                origin=settings.LEDGER_ORIGIN,
                auction=a.pk,
                bidder=org,
                tiers=[{"price": 3000 + 100 * (i % 50), "lots": 1 + i % 7}],
            )
            bodies.append((secret, json.dumps({"ciphertext": base64.b64encode(ct).decode()})))
        plan.append(bodies)
    _, transfer_key = services.apikey_create(
        organization=world.developer.pk, name="rush transfers", scopes=["transfer"]
    )
    transfers = (transfer_key, batch.pk, world.dev_account.pk, recipients)
    return a.pk, plan, [secret for mine in keys for _, secret in mine], transfers


def _webhooks(bidder_keys: list[str], port: int, receiver: int) -> int:
    """One endpoint per bidder on the slow receiver, registered through the API: each gets a
    delivery for every entry of its own (its bids)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    made = 0
    for i, key in enumerate(bidder_keys):
        conn.request(
            "POST",
            "/api/v1/webhooks",
            body=json.dumps({"url": f"http://127.0.0.1:{receiver}/hook/{i}"}),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        r = conn.getresponse()
        body = r.read()
        if r.status != 201:
            raise SystemExit(f"registering a webhook endpoint: {r.status} {body[:200]!r}")
        made += 1
    return made


class _SlowReceiver(http.server.BaseHTTPRequestHandler):
    delay = 1.0
    received = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.delay)
        with _SlowReceiver.lock:
            _SlowReceiver.received += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _send(
    conn: http.client.HTTPConnection, port: int, method: str, path: str,
    body: str | None = None, headers: dict[str, str] | None = None,
) -> tuple[http.client.HTTPConnection, int]:  # fmt: skip
    """One request on the client's keep-alive connection: the connection to use next (a new
    one after a failure) and the status (0: no answer)."""
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        r.read()
        return conn, r.status
    except (OSError, http.client.HTTPException):
        return http.client.HTTPConnection("127.0.0.1", port, timeout=30), 0


def _bidder(
    port: int, path: str, work, until: float, start_at: float, nice: int, out: mp.Queue
) -> None:
    os.nice(nice)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.time() < start_at:
        time.sleep(0.005)
    samples, i = [], 0
    while time.time() < until and i < len(work):
        secret, body = work[i]
        i += 1
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        sent, t = time.time(), time.perf_counter()
        conn, status = _send(conn, port, "POST", path, body, headers)
        samples.append((sent, time.perf_counter() - t, status))
    out.put(("bid", samples))


def _transferrer(
    port: int, plan: tuple[str, int, int, list[int]], rate: float, until: float,
    start_at: float, out: mp.Queue,
) -> None:  # fmt: skip
    key, batch, sender, recipients = plan
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.time() < start_at:
        time.sleep(0.005)
    samples, i = [], 0
    while time.time() < until:
        body = {"batch": batch, "sender": sender, "recipient": recipients[i % len(recipients)],
                "quantity": "1"}  # fmt: skip
        headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"rush-{i}",
        }
        i += 1
        sent, t = time.time(), time.perf_counter()
        conn, status = _send(conn, port, "POST", "/api/v1/transfers", json.dumps(body), headers)
        samples.append((sent, time.perf_counter() - t, status))
        time.sleep(max(0.0, sent + 1 / rate - time.time()))
    out.put(("transfer", samples))


def _browser(
    port: int,
    paths: list[str],
    until: float,
    start_at: float,
    think: float,
    nice: int,
    out: mp.Queue,
) -> None:
    os.nice(nice)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.time() < start_at:
        time.sleep(0.005)
    samples, i = [], 0
    while time.time() < until:
        path = paths[i % len(paths)]
        i += 1
        sent, t = time.time(), time.perf_counter()
        conn, status = _send(conn, port, "GET", path)
        samples.append((sent, time.perf_counter() - t, status))
        time.sleep(think)  # a person reads the page before the next click
    out.put(("browse", samples))


def _stats(samples: list[tuple[float, float, int]], seconds: float) -> dict:
    lat = sorted(s[1] for s in samples)
    n = len(lat)

    def pct(p: float) -> float:
        return lat[min(n - 1, int(n * p))] * 1000 if n else 0.0

    classes: dict[str, int] = {}
    for _, _, status in samples:
        key = f"{status // 100}xx" if status else "no answer"
        classes[key] = classes.get(key, 0) + 1
    return {
        "n": n,
        "rate": n / seconds,
        "p50": pct(0.5),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "classes": classes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bidders", type=int, default=32)
    parser.add_argument("--browsers", type=int, default=16)
    parser.add_argument("--rush", type=float, default=60, help="seconds of rush before the close")
    parser.add_argument("--after", type=float, default=5, help="seconds of load after the close")
    parser.add_argument("--receiver-delay", type=float, default=1.0)
    parser.add_argument(
        "--transfers", type=float, default=10.0, help="transfers per second during the load"
    )
    parser.add_argument(
        "--think", type=float, default=1.0, help="seconds a browser waits between pages"
    )
    parser.add_argument(
        "--server-workers",
        type=int,
        default=None,
        help="Granian worker processes in place of the README's count",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="Granian blocking threads per worker in place of the README's count",
    )
    parser.add_argument(
        "--client-nice",
        type=int,
        default=0,
        metavar="N",
        help="run the bidding and browsing clients at this niceness (an experiment: how much "
        "the load generator, on the same cores, costs the server)",
    )
    parser.add_argument(
        "--samples",
        metavar="CSV",
        help="write every request (kind, sent at, seconds, status) to this file",
    )
    parser.add_argument("--quick", action="store_true", help="CI: 16 bidders, 8 browsers, 20 s")
    args = parser.parse_args()
    if not args.transfers > 0:
        parser.error("--transfers must be more than 0 a second")
    if args.quick:
        args.bidders, args.browsers, args.rush = 16, 8, 20.0
    server = common.server_url()
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith(("redis://", "amqp://")):
        sys.stderr.write("refusing to run: CELERY_BROKER_URL must name Redis or RabbitMQ\n")
        sys.exit(2)
    os.environ.setdefault("DEBUG", "0")
    os.environ["API_RATE"] = "1000000/min"  # the throttles are not what is measured
    os.environ["API_ANON_RATE"] = "1000000/min"
    os.environ["WEBHOOK_ALLOW_LOOPBACK"] = "1"  # the slow receiver is on this machine
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    common.isolate_queues(queue)
    name = f"bench_bluecarbon_rush_{os.getpid()}"
    dsn = common.create_database(server, name)
    procs: list[subprocess.Popen] = []
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowReceiver)
    _SlowReceiver.delay = args.receiver_delay
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    failed = False
    try:
        common.django_setup(dsn)
        common.migrate()
        # Enough bids that no client runs out (the intake's measured 300-400 bids/s, and more).
        per_client = int(500 * args.rush / args.bidders) + 50
        bidders = args.bidders * -(-per_client // BIDS_PER_BIDDER)
        setup_budget = 30.0 + bidders * 0.15 + args.bidders * per_client * 0.001
        closes_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=setup_budget + args.rush)
        common.log(
            f"setting up {bidders} bidders for {args.bidders} clients, "
            f"{args.bidders * per_client:,} sealed bids"
        )
        auction_id, plan, bidder_keys, transfer_plan = _setup(args.bidders, per_client, closes_at)
        common.close_django_connections()
        env = dict(os.environ, DATABASE_URL=dsn, PYTHONUNBUFFERED="1")
        port = web.free_port()
        logdir = tempfile.mkdtemp(prefix="closing-rush-")

        sessions: dict[str, int] = {}

        def start(argv: list[str], label: str) -> None:
            log = open(f"{logdir}/{label}.log", "wb")  # noqa: SIM115 (the process's lifetime)
            procs.append(
                subprocess.Popen(
                    argv,
                    cwd=common.PROJECT_ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            sessions[label] = procs[-1].pid

        granian: dict[str, str] = {}
        if args.server_workers:
            granian["workers"] = str(args.server_workers)
        if args.threads:
            granian["blocking_threads"] = str(args.threads)
        argv = web.readme_command(port, **granian)
        served = (
            f"{argv[argv.index('--workers') + 1]} processes x "
            f"{argv[argv.index('--blocking-threads') + 1]} threads"
        )
        start(argv, "web")
        from bluecarbon import queues

        # The README's queues are the default names: this run's are its own (isolate_queues).
        rename = {default: os.environ[setting] for setting, default in queues.KINDS.values()}
        for i, argv in enumerate(_readme_workers()):
            qi = argv.index("-Q") + 1
            argv[qi] = ",".join(rename[q] for q in argv[qi].split(","))
            argv[argv.index("-n") + 1] = f"{queue}-{i}@%h"
            start([sys.executable, "-m", *argv], f"worker-{i}")
        start(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bluecarbon",
                "beat",
                "-s",
                f"{logdir}/beat-schedule",
            ],
            "beat",
        )
        for _ in range(150):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        endpoints = _webhooks(bidder_keys, port, receiver.server_address[1])
        close_ts = closes_at.timestamp()
        start_at = max(time.time() + 2.0, close_ts - args.rush)
        until = close_ts + args.after
        if start_at > close_ts - 5:
            raise SystemExit(
                f"setup took too long: the rush would start {close_ts - start_at:.0f} "
                "s before the close"
            )
        common.log(
            f"rush: {args.bidders} bidding clients, {args.browsers} browsers, {endpoints} webhook "
            f"endpoints, {close_ts - start_at:.0f} s to the close and {args.after:.0f} "
            "s after"
        )
        paths = [
            "/",
            "/auctions/",
            f"/auctions/{auction_id}/",
            "/registry/projects/",
            "/api/v1/ledger/entries?limit=100",
            "/api/v1/ledger/tlog/checkpoint",
            f"/api/v1/auctions/{auction_id}",
        ]
        ctx = mp.get_context("fork")
        out: mp.Queue = ctx.Queue()
        clients = (
            [
                ctx.Process(
                    target=_bidder,
                    args=(
                        port,
                        f"/api/v1/auctions/{auction_id}/bids",
                        work,
                        until,
                        start_at,
                        args.client_nice,
                        out,
                    ),
                )
                for work in plan
            ]
            + [
                ctx.Process(
                    target=_browser,
                    args=(
                        port,
                        paths[i:] + paths[:i],
                        until,
                        start_at,
                        args.think,
                        args.client_nice,
                        out,
                    ),
                )
                for i in range(args.browsers)
            ]
            + [
                ctx.Process(
                    target=_transferrer,
                    args=(port, transfer_plan, args.transfers, until, start_at, out),
                )
            ]
        )
        for p in clients:
            p.start()
        while time.time() < start_at:
            time.sleep(0.01)
        cpu_before = common.cpu_seconds_by_session(sessions, {"database": "postgres"})
        results: dict[str, list] = {"bid": [], "browse": [], "transfer": []}
        for _ in clients:
            kind, samples = out.get(timeout=until - time.time() + 120)
            results[kind] += samples
        cpu_after = common.cpu_seconds_by_session(sessions, {"database": "postgres"})
        for p in clients:
            p.join()
        # The close: its entry's time against the closing time.
        from django.db import connection

        lag = None
        deadline = time.time() + 60
        while time.time() < deadline and lag is None:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT body FROM ledger_ledgerentry WHERE type = 'auction.close' ORDER BY seq"
                )
                for (body,) in cursor.fetchall():
                    entry = json.loads(bytes(body))
                    if entry["data"]["auction"] == auction_id:
                        t = dt.datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
                        lag = (t - closes_at).total_seconds()
            if lag is None:
                time.sleep(0.5)
            connection.close()
        window = (
            dt.datetime.fromtimestamp(start_at, dt.UTC),
            dt.datetime.fromtimestamp(until, dt.UTC),
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT status, count(*) FROM ledger_webhookdelivery GROUP BY 1")
            deliveries = dict(cursor.fetchall())
            # Made during the rush (the transfers') and from the close to the end (the close's
            # entry is a delivery to every bidder: counted apart, it is not rush traffic).
            cursor.execute(
                "SELECT count(*) FILTER (WHERE created_at < %s), count(*) "
                "FROM ledger_webhookdelivery WHERE created_at BETWEEN %s AND %s",
                (closes_at, *window),
            )
            made_in_rush, made_in_load = cursor.fetchone()
            cursor.execute(
                "SELECT count(*) FROM ledger_webhookdelivery WHERE delivered_at BETWEEN %s AND %s",
                window,
            )
            (sent_in_load,) = cursor.fetchone()
        connection.close()
        # Bids sent before the close are the ones the targets speak of; after it, 409 is the
        # answer (one sent just before may be accepted: the ledger orders it before the close).
        if args.samples:
            with open(args.samples, "w") as f:
                f.write("kind,sent,seconds,status\n")
                for kind, got in results.items():
                    f.writelines(f"{kind},{t:.4f},{s:.5f},{c}\n" for t, s, c in got)
        before = [s for s in results["bid"] if s[0] <= close_ts]
        after = [s for s in results["bid"] if s[0] > close_ts]
        rush_seconds = close_ts - start_at
        rows = []
        for label, samples, seconds in (
            ("bids before the close", before, rush_seconds),
            ("bids after the close", after, args.after),
            ("browsing", results["browse"], rush_seconds + args.after),
            ("transfers", results["transfer"], rush_seconds + args.after),
        ):
            s = _stats(samples, seconds)
            rows.append(
                (
                    label,
                    f"{s['n']:,}",
                    f"{s['rate']:,.0f}",
                    f"{s['p50']:.0f}",
                    f"{s['p95']:.0f}",
                    f"{s['p99']:.0f}",
                    " ".join(f"{k}:{v}" for k, v in sorted(s["classes"].items())),
                )
            )
        print(
            f"closing_rush: {args.bidders} bidding clients ({bidders} bidders), "
            f"{args.browsers} browsers, {endpoints} "
            f"webhook endpoints ({args.receiver_delay:.1f} s per delivery), "
            f"{rush_seconds:.0f} s rush + {args.after:.0f} s after the close; README's web "
            f"server ({served}), {len(_readme_workers())} workers and a beat on "
            f"{os.cpu_count()} cores"
        )
        print(
            common.table(["", "requests", "per s", "p50 ms", "p95 ms", "p99 ms", "answers"], rows)
        )
        print(
            f"webhook deliveries during the {until - start_at:.0f} s of load: {made_in_load:,} "
            f"made ({made_in_rush:,} before the close, the rest the close's), "
            f"{sent_in_load:,} sent; at its end {deliveries} (received by the slow "
            f"receiver: {_SlowReceiver.received:,})"
        )
        spent = {k: cpu_after[k] - cpu_before[k] for k in cpu_after}
        print(
            f"CPU seconds during the {until - start_at:.0f} s of load ({os.cpu_count()} cores): "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]))
        )
        everything = results["bid"] + results["browse"] + results["transfer"]
        five = sum(1 for s in everything if s[2] >= 500 or s[2] == 0)
        bid_p99 = _stats(before, rush_seconds)["p99"]
        verdict = {True: "met", False: "NOT met"}
        print(f"5xx or no answer: {five} (target 0: {verdict[five == 0]})")
        print(
            f"bid p99 before the close: {bid_p99:.0f} ms (target < 300: {verdict[bid_p99 < 300]})"
        )
        if lag is None:
            print("the auction did not close within 60 s of the end of the rush")
            failed = True
        else:
            print(
                f"close lag: {lag:.2f} s after the closing time (target <= 2: {verdict[lag <= 2]})"
            )
    finally:
        common.stop_processes(procs)
        receiver.shutdown()
        common.close_django_connections()
        common.drop_database(server, name)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
