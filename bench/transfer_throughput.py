"""Transfer throughput through the service layer against PostgreSQL, vs a bare-psycopg
baseline measured in the same run.

Every client is a process (``multiprocessing`` spawn, each calls ``django.setup()``). A
service transfer is ``ledger.services.credit_transfer`` in its own
``transaction.atomic(durable=True)``. The baseline is a bare psycopg loop at the same
concurrency that, per committed transaction, locks a scratch head row (``FOR UPDATE``),
SHA-256-chains a ~230-byte canonical-JSON body, INSERTs it into a scratch table shaped like
``ledger_ledgerentry`` (``LIKE ... INCLUDING ALL``: same columns and indexes), UPDATEs the head
and commits: one hash-chained row per committed transaction, under the same single lock.

Phases (all with the same clients):

* baseline       bare psycopg append loop
* disjoint       each client moves credits among its own accounts in its own batch: no two
                 clients touch the same holding or batch; only the ledger head is shared
* shared batch   each client uses its own accounts, all in ONE batch: distinct holdings, but
                 ``credit_transfer`` locks the batch row FOR UPDATE, so clients queue there
* same holding   all clients transfer between the same two accounts of one batch

The ratio of interest is disjoint / baseline (target >= 0.5).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/transfer_throughput.py [--seconds S | --transfers M] [--quick]

Celery: each transfer's on-commit hook enqueues a checkpoint task at most once a second per
process. By default the settings' kombu filesystem transport is used (no server), pointed at a
temporary ``BLUECARBON_VAR_DIR``; nothing consumes the tasks. ``--broker memory`` uses kombu's
in-process transport instead. The time spent in that hook is measured and reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import queue
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import _common as common

QTY = 1
WARMUP_TRANSFERS = 20
FUNDING = 10**9  # kg per account and batch: quantity-1 transfers never run dry


@dataclass
class PhaseResult:
    ops: int = 0
    errors: int = 0
    started: float = 0.0
    ended: float = 0.0
    latencies: list[float] = field(default_factory=list)
    hook_calls: int = 0
    hook_seconds: float = 0.0
    enqueues: int = 0
    enqueue_seconds: float = 0.0
    busy_seconds: float = 0.0
    error_samples: list[str] = field(default_factory=list)


# ---- client processes ------------------------------------------------------------------------


class _HookTimer:
    """Wraps ``ledger.services.append._checkpoint_and_webhooks_soon`` (looked up by
    ``_ledger_append_many`` at call time) to time the on-commit hook and the enqueues it does."""

    def __init__(self) -> None:
        from ledger.services import append

        self.services = append
        self.original = append._checkpoint_and_webhooks_soon
        self.calls = 0
        self.seconds = 0.0
        self.enqueues = 0
        self.enqueue_seconds = 0.0
        append._checkpoint_and_webhooks_soon = self

    def __call__(self) -> None:
        before = self.services._checkpoint_last_enqueued
        started = time.perf_counter()
        self.original()
        elapsed = time.perf_counter() - started
        self.calls += 1
        self.seconds += elapsed
        if self.services._checkpoint_last_enqueued != before:
            self.enqueues += 1
            self.enqueue_seconds += elapsed

    def snapshot(self) -> tuple[int, float, int, float]:
        return self.calls, self.seconds, self.enqueues, self.enqueue_seconds


def _baseline_op(conn, rng: random.Random, client: int) -> None:
    from datetime import UTC, datetime

    cur = conn.cursor()
    size, last = cur.execute(
        "SELECT size, last_hash FROM bench_scratch_head WHERE id = 1 FOR UPDATE"
    ).fetchone()
    body = json.dumps(
        {
            "v": 1,
            "seq": size,
            "prev": bytes(last).hex(),
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "type": "credit.transfer",
            "actor": f"org:bench-client-{client:02d}",
            "data": {
                "batch": 100 + client,
                "from": rng.randrange(1000),
                "to": rng.randrange(1000),
                "quantity": QTY,
            },
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    digest = hashlib.sha256(body).digest()
    cur.execute(
        "INSERT INTO bench_scratch_entry (seq, body, type) VALUES (%s, %s, %s)",
        (size, body, "credit.transfer"),
    )
    cur.execute(
        "UPDATE bench_scratch_head SET size = %s, last_hash = %s WHERE id = 1", (size + 1, digest)
    )
    conn.commit()


def _transfer_function():
    """``ledger.services.credit_transfer``, or the candidate named by ``--transfer-fn``."""
    spec = os.environ.get("BENCH_TRANSFER_FN")
    if not spec:
        from ledger import services

        return services.credit_transfer
    import importlib

    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _worker(client: int, commands: mp.Queue, results: mp.Queue) -> None:
    common.django_setup(os.environ["DATABASE_URL"])
    import psycopg
    from django.db import transaction

    from ledger.actors import Actor

    hook = _HookTimer()
    transfer = _transfer_function()
    actor = Actor.system("bench")
    rng = random.Random(client)
    bare = None
    warmup = commands.get()  # (batch, a, b): a few untimed transfers to warm Django and Celery
    for i in range(WARMUP_TRANSFERS):
        batch, a, b = warmup if i % 2 == 0 else (warmup[0], warmup[2], warmup[1])
        with transaction.atomic(durable=True):
            transfer(actor=actor, batch=batch, sender=a, recipient=b, quantity=QTY)
    results.put(("ready", client, hook.snapshot()))
    while (cmd := commands.get()) is not None:
        res = PhaseResult()
        try:
            kind, start_at, seconds, max_ops, triples = cmd
            if (not triples and kind != "baseline") or kind == "idle":
                results.put(("done", client, None))
                continue
            if kind == "baseline" and bare is None:
                bare = psycopg.connect(common.libpq_url(os.environ["DATABASE_URL"]))
            if kind == "service":  # warm the connection and caches outside the timed window
                from django.db import connection

                connection.ensure_connection()
            h0 = hook.snapshot()
            while time.time() < start_at:
                time.sleep(min(0.01, max(0.0, start_at - time.time())))
            res.started = time.time()
            deadline = res.started + seconds
            cpu0 = time.process_time()
            while res.ops < max_ops:
                t = time.perf_counter()
                try:
                    if kind == "baseline":
                        _baseline_op(bare, rng, client)
                    else:
                        batch, a, b = triples[rng.randrange(len(triples))]
                        if rng.random() < 0.5:
                            a, b = b, a
                        with transaction.atomic(durable=True):
                            transfer(actor=actor, batch=batch, sender=a, recipient=b, quantity=QTY)
                except Exception as exc:  # counted and sampled; the loop goes on
                    res.errors += 1
                    if len(res.error_samples) < 3:
                        res.error_samples.append(f"{type(exc).__name__}: {exc}")
                    if bare is not None and kind == "baseline":
                        bare.rollback()
                else:
                    res.ops += 1
                    res.latencies.append(time.perf_counter() - t)
                if time.time() >= deadline:
                    break
            res.ended = time.time()
            res.busy_seconds = time.process_time() - cpu0
            h1 = hook.snapshot()
            res.hook_calls, res.hook_seconds = h1[0] - h0[0], h1[1] - h0[1]
            res.enqueues, res.enqueue_seconds = h1[2] - h0[2], h1[3] - h0[3]
        except BaseException as exc:
            res.errors += 1
            res.error_samples.append(f"client crashed: {type(exc).__name__}: {exc}")
        results.put(("done", client, res))
    if bare is not None:
        bare.close()


# ---- setup, in the parent ------------------------------------------------------------------


@dataclass
class World:
    client_accounts: list[list[int]]
    client_batches: list[int]
    shared_batch: int


def _make_world(clients: int, per_client: int) -> World:
    from ledger import services
    from ledger.actors import Actor
    from ledger.models import Account, Role
    from tests import factories

    operator = Actor.system("bench-setup")
    registry = factories.organization(Role.REGISTRY, Role.OPERATOR, handle="bench-registry")
    developer = factories.organization(Role.DEVELOPER, handle="bench-developer")
    proj = factories.project(registry, developer, factories.methodology("VM0033-bench"))
    accounts = []
    for c in range(clients):
        org = factories.organization(Role.BIDDER, handle=f"bench-client-{c:02d}")
        accounts.append([factories.account(org, name=f"Account {j}") for j in range(per_client)])
    issue = FUNDING * clients * per_client * 2

    def fund(year: int, holder: Account, recipients: list[Account]) -> int:
        b = factories.batch(proj, issue, year=year, share_bp=0, holder=holder)
        for r in recipients:
            if r.pk != holder.pk:
                services.credit_transfer(
                    actor=operator, batch=b.pk, sender=holder.pk, recipient=r.pk, quantity=FUNDING
                )
        return b.pk

    batches = [fund(2001 + c, accounts[c][0], accounts[c]) for c in range(clients)]
    shared = fund(2001 + clients, accounts[0][0], [a for accs in accounts for a in accs])
    return World([[a.pk for a in accs] for accs in accounts], batches, shared)


def _create_scratch_tables() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("CREATE TABLE bench_scratch_entry (LIKE ledger_ledgerentry INCLUDING ALL)")
        cur.execute("CREATE TABLE bench_scratch_head (LIKE ledger_ledgerhead INCLUDING ALL)")
        cur.execute(
            "INSERT INTO bench_scratch_head (id, size, last_hash) VALUES (1, 0, %s)", [bytes(32)]
        )


def _queries_per_transfer(world: World) -> list[str]:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from ledger import services
    from ledger.actors import Actor

    accs = world.client_accounts[0]
    with CaptureQueriesContext(connection) as ctx, transaction.atomic(durable=True):
        services.credit_transfer(
            actor=Actor.system("bench"),
            batch=world.client_batches[0],
            sender=accs[0],
            recipient=accs[1],
            quantity=QTY,
        )
    return [q["sql"] for q in ctx.captured_queries]


def _verify_after() -> str:
    """Full verification of what the clients wrote (no checkpoints exist: nothing ran the
    checkpoint task), with a throwaway key since verify_ledger insists on one."""
    from django.conf import settings

    from ledger.core.note import Signer
    from ledger.verify import VerificationError, verify_ledger

    try:
        report = verify_ledger(verifiers=[Signer.generate(settings.LEDGER_ORIGIN).verifier()])
    except VerificationError as exc:
        return f"FAILED: {exc}"
    return f"OK: {report.entries:,} entries, chain, replay and tables agree"


# ---- running phases --------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _run_phase(
    commands: list[mp.Queue],
    results: mp.Queue,
    kind: str,
    label: str,
    seconds: float,
    max_ops_total: int | None,
    triples_for: list[list[tuple[int, int, int]]],
    active: int,
) -> list[PhaseResult]:
    clients = len(commands)
    max_ops = -(-max_ops_total // active) if max_ops_total else 1 << 62
    start_at = time.time() + 0.5
    for c, q in enumerate(commands):
        q.put((kind if c < active else "idle", start_at, seconds, max_ops, triples_for[c]))
    got: dict[int, PhaseResult] = {}
    pbar = common.bar(None if max_ops_total else round(seconds), label, " s")
    while len(got) < clients:
        try:
            _, client, res = results.get(timeout=0.5)
            got[client] = res
        except queue.Empty:
            pass
        now = time.time()
        if now > start_at and not max_ops_total:
            pbar.update(min(round(now - start_at), round(seconds)) - pbar.n)
    pbar.close()
    return [got[c] for c in range(active)]


@dataclass
class Line:
    label: str
    ops: int
    seconds: float
    rate: float
    p50: float
    p99: float
    errors: int
    cpu: float
    results: list[PhaseResult]


def _summarize(label: str, res: list[PhaseResult]) -> Line:
    ops = sum(r.ops for r in res)
    start = min(r.started for r in res)
    end = max(r.ended for r in res)
    lat = [x for r in res for x in r.latencies]
    return Line(
        label,
        ops,
        end - start,
        common.rate(ops, end - start),
        _percentile(lat, 0.5) * 1000,
        _percentile(lat, 0.99) * 1000,
        sum(r.errors for r in res),
        sum(r.busy_seconds for r in res) / ops * 1e6 if ops else 0.0,
        res,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="length of the baseline and disjoint phases "
        "(default 20; the two contention phases run 2/3 of it)",
    )
    parser.add_argument(
        "--transfers",
        type=int,
        default=None,
        help="run each phase until this many transfers instead of for a time",
    )
    parser.add_argument("--accounts-per-client", type=int, default=8)
    parser.add_argument("--broker", choices=["filesystem", "memory"], default="filesystem")
    parser.add_argument(
        "--transfer-fn",
        metavar="MODULE:FUNC",
        help="benchmark a candidate implementation with credit_transfer's signature instead "
        "(importable in the clients, e.g. via PYTHONPATH); the ledger is verified afterwards",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip verify_ledger afterwards")
    parser.add_argument("--quick", action="store_true", help="CI: 3-second phases")
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 20.0)
    per_client = args.accounts_per_client if not args.quick else min(args.accounts_per_client, 4)

    server = common.server_url()
    name = f"bench_bluecarbon_{os.getpid()}"
    var_dir = Path(tempfile.mkdtemp(prefix="bench-var-"))
    os.environ["BLUECARBON_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DEBUG", "0")  # as in production: no query log
    if args.transfer_fn:
        os.environ["BENCH_TRANSFER_FN"] = args.transfer_fn
    if args.broker == "memory":
        os.environ["CELERY_BROKER_URL"] = "memory://localhost/"
    else:
        os.environ.pop("CELERY_BROKER_URL", None)  # the settings' default: filesystem://
    dsn = common.create_database(server, name)
    procs: list[mp.Process] = []
    try:
        common.django_setup(dsn)
        from django.conf import settings

        common.log(
            f"database {name}; migrating and creating {args.clients} x {per_client} "
            "accounts through the services"
        )
        common.migrate()
        world = _make_world(args.clients, per_client)
        _create_scratch_tables()
        queries = _queries_per_transfer(world)
        common.close_django_connections()

        ctx = mp.get_context("spawn")
        results: mp.Queue = ctx.Queue()
        commands = [ctx.Queue() for _ in range(args.clients)]
        for c in range(args.clients):
            p = ctx.Process(target=_worker, args=(c, commands[c], results), daemon=True)
            p.start()
            procs.append(p)
        for c in range(args.clients):
            accs = world.client_accounts[c]
            commands[c].put((world.client_batches[c], accs[0], accs[1]))
        warm = [results.get(timeout=300)[2] for _ in range(args.clients)]
        warm_enqueue_ms = 1000 * sum(w[3] for w in warm) / max(1, sum(w[2] for w in warm))
        common.log(
            f"{args.clients} client processes ready (after {WARMUP_TRANSFERS} untimed "
            "transfers each)"
        )

        def own(c: int, batch: int) -> list[tuple[int, int, int]]:
            accs = world.client_accounts[c]
            return [(batch, a, b) for i, a in enumerate(accs) for b in accs[i + 1 :]]

        contention = max(1.0, seconds * 2 / 3)
        single = max(1.0, seconds / 3)
        x, y = world.client_accounts[0][0], world.client_accounts[1][0]
        k = args.clients
        disjoint = [own(c, world.client_batches[c]) for c in range(k)]
        phases = [
            ("baseline", "baseline: bare psycopg append", seconds, [[]] * k, k),
            ("service", "service: disjoint holdings+batches", seconds, disjoint, k),
            (
                "service",
                "service: disjoint holdings, 1 batch",
                contention,
                [own(c, world.shared_batch) for c in range(k)],
                k,
            ),
            (
                "service",
                "service: same holding pair",
                contention,
                [[(world.shared_batch, x, y)]] * k,
                k,
            ),
            ("baseline", "baseline, 1 client", single, [[]] * k, 1),
            ("service", "service: disjoint, 1 client", single, disjoint, 1),
        ]
        lines = []
        for kind, label, secs, triples, active in phases:
            common.log(f"phase {label} ({secs:.0f} s)" if not args.transfers else f"phase {label}")
            res = _run_phase(
                commands,
                results,
                kind,
                label,
                secs if not args.transfers else 600.0,
                args.transfers,
                triples,
                active,
            )
            lines.append(_summarize(label, res))
        for q in commands:
            q.put(None)
        for p in procs:
            p.join(timeout=30)

        verified = "skipped"
        if not args.no_verify:
            common.log("verifying the ledger the clients wrote")
            verified = _verify_after()

        base = lines[0].rate
        if args.transfer_fn:
            print(f"CANDIDATE {args.transfer_fn} in the service phases, not credit_transfer")
        print(
            f"transfer_throughput: {args.clients} client processes, PostgreSQL, "
            f"{per_client} accounts per client, quantity {QTY} kg per transfer"
        )
        rows = [
            (
                ln.label,
                len(ln.results),
                f"{ln.ops:,}",
                f"{ln.seconds:.1f}",
                f"{ln.rate:,.0f}",
                f"{ln.rate / (base if len(ln.results) > 1 else lines[4].rate or 1):.2f}",
                f"{ln.p50:.1f}",
                f"{ln.p99:.1f}",
                f"{ln.cpu:,.0f}",
                ln.errors,
            )
            for ln in lines
        ]
        print(
            common.table(
                [
                    "phase",
                    "clients",
                    "commits",
                    "s",
                    "per s",
                    "vs baseline*",
                    "p50 ms",
                    "p99 ms",
                    "client CPU us/op",
                    "errors",
                ],
                rows,
            )
        )
        print("* against the baseline with the same number of clients")
        print()
        main_line = lines[1]
        ratio = main_line.rate / base if base else 0.0
        print(
            f"ratio service (disjoint) / baseline: {ratio:.2f}  (target >= 0.5: "
            f"{'met' if ratio >= 0.5 else 'NOT met'})"
        )
        if lines[1].rate:
            print(
                f"one shared batch / disjoint: {lines[2].rate / lines[1].rate:.2f};  "
                f"same holding / disjoint: {lines[3].rate / lines[1].rate:.2f};  "
                f"single client service / baseline: {lines[5].rate / (lines[4].rate or 1):.2f}"
            )
        svc = [r for ln in lines[1:] for r in ln.results]
        hook_calls = sum(r.hook_calls for r in svc)
        hook_s = sum(r.hook_seconds for r in svc)
        enq = sum(r.enqueues for r in svc)
        enq_s = sum(r.enqueue_seconds for r in svc)
        client_s = sum(r.ended - r.started for r in svc)
        broker = settings.CELERY_BROKER_URL
        queued = (
            len(list((var_dir / "broker" / "queue").glob("*")))
            if broker.startswith("filesystem")
            else None
        )
        print(
            f"queries per ledger.services.credit_transfer (incl. SAVEPOINT/RELEASE): {len(queries)}"
        )
        print(
            f"checkpoint on-commit hook ({broker}): {hook_calls:,} calls, {enq} enqueues, "
            f"{hook_s * 1000:.0f} ms total ({100 * hook_s / client_s:.2f} % of client time); "
            f"per enqueue {1000 * enq_s / enq if enq else 0:.1f} ms"
            + (f"; {queued} task files left in the temporary queue" if queued is not None else "")
        )
        print(
            f"first enqueue per process (during warm-up, Celery app + broker connection): "
            f"{warm_enqueue_ms:.0f} ms"
        )
        print(
            f"errors: {sum(ln.errors for ln in lines)}"
            + "".join(f"\n  {s}" for ln in lines for r in ln.results for s in r.error_samples[:1])
        )
        print(f"verify_ledger afterwards: {verified}")
        if os.environ.get("BENCH_SHOW_QUERIES"):
            print("\n".join(queries))
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        common.close_django_connections()
        common.drop_database(server, name)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
