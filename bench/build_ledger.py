"""Build a large, valid ledger fast: the bulk path for benchmarks.

A small world (organizations, accounts, projects, batches) is created through the services,
and the tree and a checkpoint are extended over it by ``ledger_checkpoint_issue``. Then
millions of ``credit.transfer`` entries (and ~1 % ``credit.retire``) are generated in Python
with correct hash chaining and replay semantics (balances tracked in memory, nothing is ever
overdrawn), and loaded with COPY together with everything derived from them: Merkle nodes,
retirement rows, batch totals, holdings, the ledger and tree heads and a few signed
checkpoints. The result passes ``manage.py ledger_verify``.

Entry bytes: ``credit.transfer`` bodies are formatted from a template (the RFC 8785 form of
that one shape) and compared byte for byte with ``ledger.core.entry.encode_entry`` for the
first 2,000 and then every 1,009th entry; retirements always go through ``encode_entry``.
``--exact`` encodes every entry with ``encode_entry`` (about 3x slower).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/build_ledger.py [--entries N] [--db NAME] [--verify] [--quick]

Without ``--db`` the ledger goes into a fresh ``bench_bluecarbon_<pid>`` database that is
dropped at the end (use ``--keep`` to keep it). With ``--db NAME`` it goes into NAME (created
if missing, refused if it already holds a ledger unless ``--replace``), which is kept.
Importable: ``build(n, dsn)``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import _common as common

CHUNK = 50_000
RETIRE_SHARE = 0.01
EXACT_CHECK_FIRST = 2_000
EXACT_CHECK_EVERY = 1_009
TIME_STEP_US = 10  # entry times advance by 10 us: 1M entries span 10 s
ISSUED_PER_BATCH = 10**13  # kg; far below MAX_KG, far above what 1M transfers move
BENCH_ACTOR = "system:bench"

_TRANSFER = (
    '{"actor":"%s","data":{"batch":%d,"from":%d,"quantity":%d,"to":%d},'
    '"prev":"%s","seq":%d,"time":"%s","type":"credit.transfer","v":1}'
)


@dataclass
class BuildStats:
    entries: int = 0  # ledger size at the end
    world_entries: int = 0
    transfers: int = 0
    retirements: int = 0
    merkle_nodes: int = 0
    checkpoints: int = 0
    accounts: int = 0
    batches: int = 0
    holdings: int = 0
    exact_checks: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    timings_info: dict[str, float] = field(default_factory=dict)  # overlapping, not summed


# ---- Django side: the world, through the services ------------------------------------------


def _ensure_django(dsn: str) -> None:
    from django.conf import settings

    if settings.configured:
        from django.db import connection

        if connection.vendor != "postgresql" or connection.settings_dict["NAME"] != (
            common.database_name(dsn)
        ):
            raise RuntimeError(
                f"Django is set up for {connection.settings_dict['NAME']!r}, not {dsn!r}"
            )
        return
    os.environ.setdefault("CELERY_BROKER_URL", "memory://localhost/")
    common.django_setup(dsn)


def _make_world(n_accounts: int, n_batches: int) -> None:
    """Organizations, accounts, methodology, projects and batches, all through services."""
    from ledger import services
    from ledger.models import Role
    from tests import factories

    registry = factories.organization(Role.REGISTRY, Role.OPERATOR, handle="bench-registry")
    developers = [
        factories.organization(Role.DEVELOPER, handle=f"bench-developer-{i}") for i in range(2)
    ]
    n_orgs = max(1, n_accounts // 10)
    buyers = [
        factories.organization(Role.BIDDER, handle=f"bench-buyer-{i:03d}") for i in range(n_orgs)
    ]
    holders = [factories.account(d, name="Issuance") for d in developers]
    accounts = list(holders)
    i = 0
    while len(accounts) < n_accounts:
        org = buyers[i % len(buyers)]
        accounts.append(factories.account(org, name=f"Account {i}"))
        i += 1
    meth = factories.methodology("VM0033-bench")
    projects = [factories.project(registry, d, meth) for d in developers]
    for k in range(n_batches):
        year = 2001 + k // len(projects)
        proj = projects[k % len(projects)]
        factories.batch(
            proj,
            ISSUED_PER_BATCH,
            year=year,
            share_bp=1000,
            holder=holders[k % len(holders)],
        )
    # Tree nodes and a signed checkpoint over the world, the way the checkpoint task does it.
    services.ledger_checkpoint_issue()


# ---- the bulk part, in psycopg -----------------------------------------------------------


class _Times:
    """Entry times: base + i * step, formatted like ``entry.format_time``, fast."""

    def __init__(self, start: dt.datetime) -> None:
        self.base_us = (start - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(
            microseconds=1
        )
        self._sec = -1
        self._prefix = ""

    def at(self, i: int) -> tuple[str, int]:
        us = self.base_us + i * TIME_STEP_US
        sec, frac = divmod(us, 1_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = dt.datetime.fromtimestamp(sec, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        return f"{self._prefix}{frac:06d}Z", sec

    @staticmethod
    def moment(us: int) -> dt.datetime:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)


def _load_state(cur) -> dict:
    state: dict = {}
    state["head_size"], last = cur.execute(
        "SELECT size, last_hash FROM ledger_ledgerhead WHERE id = 1"
    ).fetchone()
    state["last_hash"] = bytes(last)
    row = cur.execute("SELECT size FROM ledger_treehead WHERE id = 1").fetchone()
    state["tree_size"] = row[0] if row else 0
    state["accounts"] = {
        a: (kind, handle)
        for a, kind, handle in cur.execute(
            "SELECT a.id, a.kind, o.handle FROM ledger_account a "
            "JOIN ledger_organization o ON o.id = a.organization_id ORDER BY a.id"
        )
    }
    state["batches"] = [b for (b,) in cur.execute("SELECT id FROM ledger_batch ORDER BY id")]
    state["holdings"] = {
        (a, b): [t, e]
        for a, b, t, e in cur.execute(
            "SELECT account_id, batch_id, tradable, escrowed FROM ledger_holding"
        )
    }
    return state


def _frontier(cur, size: int):
    from ledger.core import merkle

    ids = merkle.frontier_node_ids(size)
    found = {}
    for level, index in ids:
        row = cur.execute(
            'SELECT hash FROM ledger_merklenode WHERE level = %s AND "index" = %s', (level, index)
        ).fetchone()
        if row is None:
            raise RuntimeError(f"merkle node ({level}, {index}) missing after the world was built")
        found[(level, index)] = bytes(row[0])
    return merkle.Frontier.from_nodes(size, lambda level, index: found[(level, index)])


class _Loader:
    """COPYs chunks of entry and node rows in a thread while the next chunk is generated
    (psycopg releases the GIL while it waits on the socket). One chunk in flight at most."""

    def __init__(self, cur) -> None:
        import queue
        import threading

        self.cur = cur
        self.busy = 0.0
        self.error: BaseException | None = None
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._run, name="copy-loader", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from psycopg.copy import QueuedLibpqWriter

        cur = self.cur
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue
            entry_rows, node_rows = item
            started = time.perf_counter()
            try:
                with cur.copy(
                    "COPY ledger_ledgerentry (seq, body, type, mac) FROM STDIN (FORMAT BINARY)",
                    writer=QueuedLibpqWriter(cur),
                ) as copy:
                    copy.set_types(["int8", "bytea", "varchar", "bytea"])
                    for row in entry_rows:
                        copy.write_row(row)
                with cur.copy(
                    'COPY ledger_merklenode (level, "index", hash) FROM STDIN (FORMAT BINARY)',
                    writer=QueuedLibpqWriter(cur),
                ) as copy:
                    copy.set_types(["int2", "int8", "bytea"])
                    for row in node_rows:
                        copy.write_row(row)
            except BaseException as exc:  # re-raised in the generating thread
                self.error = exc
            self.busy += time.perf_counter() - started

    def put(self, entry_rows: list, node_rows: list) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((entry_rows, node_rows))

    def finish(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def build(
    n: int,
    dsn: str,
    *,
    seed: int = 1,
    accounts: int = 200,
    batches: int = 8,
    checkpoints: int = 4,
    retire_share: float = RETIRE_SHARE,
    exact: bool = False,
    vacuum: bool = True,
    progress: bool = True,
) -> BuildStats:
    """Build a valid ledger of exactly ``n`` entries into the (empty or fresh) database ``dsn``.

    Sets Django up for ``dsn`` if it is not set up yet (and refuses a different database),
    runs migrations, creates the world through the services, then bulk-loads the rest."""
    import psycopg

    _ensure_django(dsn)
    from django.conf import settings

    from ledger.core import merkle
    from ledger.core.entry import encode_entry, entry_hash, format_time
    from ledger.entry_auth import entry_key

    entry_mac, mac_since = entry_key().mac, entry_key().since
    from ledger.core.note import Checkpoint as CheckpointBody
    from ledger.core.note import checkpoint_sign
    from ledger.models import LedgerEntry
    from ledger.signing import get_signer

    stats = BuildStats()
    t0 = time.perf_counter()
    common.migrate()
    if LedgerEntry.objects.exists():
        raise RuntimeError(f"{common.database_name(dsn)} already holds a ledger; build needs none")
    _make_world(accounts, batches)
    common.close_django_connections()
    stats.timings["world (services)"] = time.perf_counter() - t0

    rng = random.Random(seed)
    signer = get_signer()
    origin = settings.LEDGER_ORIGIN
    sha256 = hashlib.sha256
    leaf_hash = merkle.leaf_hash

    with psycopg.connect(common.libpq_url(dsn)) as conn, conn.cursor() as cur:
        st = _load_state(cur)
        start = st["head_size"]
        if st["tree_size"] != start:
            raise RuntimeError("the world's Merkle tree does not cover the world's entries")
        if n <= start:
            raise ValueError(f"n={n} must be larger than the world ({start} entries)")
        stats.world_entries = start
        frontier = _frontier(cur, start)
        prev = st["last_hash"]
        holdings: dict[tuple[int, int], list[int]] = st["holdings"]
        retired_add: dict[int, int] = dict.fromkeys(st["batches"], 0)
        holding_accounts = [a for a, (kind, _) in st["accounts"].items() if kind == "holding"]
        actor_of = {a: f"org:{handle}" for a, (_, handle) in st["accounts"].items()}
        batch_ids = st["batches"]
        # Per batch: holding accounts that have held credits of it (candidate senders).
        funded: dict[int, list[int]] = {b: [] for b in batch_ids}
        for (a, b), (t, _) in sorted(holdings.items()):
            if t > 0 and st["accounts"][a][0] == "holding":
                funded[b].append(a)
        stats.accounts, stats.batches = len(holding_accounts), len(batch_ids)

        cp_sizes = sorted(
            {start + (n - start) * (k + 1) // checkpoints for k in range(checkpoints)}
        )
        cp_rows: list[tuple] = []
        retire_rows: list[tuple] = []
        times = _Times(dt.datetime.now(dt.UTC))

        t1 = time.perf_counter()
        copy_wait = 0.0  # time the generator waited for the loader thread
        loader = _Loader(cur)
        pbar = common.bar(n - start, "generate + COPY", " entries") if progress else None
        for chunk_start in range(start, n, CHUNK):
            end = min(n, chunk_start + CHUNK)
            entry_rows: list[tuple] = []
            node_rows: list[tuple] = []
            add_nodes = node_rows.extend
            add_entry = entry_rows.append
            for seq in range(chunk_start, end):
                i = seq - start
                t, sec = times.at(i)
                b = batch_ids[rng.randrange(len(batch_ids))]
                senders = funded[b]
                while True:
                    src = senders[rng.randrange(len(senders))]
                    h_src = holdings[(src, b)]
                    if h_src[0] > 0:
                        break
                bal = h_src[0]
                if rng.random() < retire_share:
                    qty = rng.randint(1, min(bal, 1000))
                    h_src[0] -= qty
                    retired_add[b] += qty
                    year = dt.datetime.fromtimestamp(sec, dt.UTC).year
                    record = {
                        "certificate": f"BCR-{year}-{seq:010d}",
                        "account": src,
                        "batch": b,
                        "quantity": qty,
                        "beneficiary": f"Beneficiary {rng.randrange(10_000)}",
                        "purpose": "Voluntary offsetting of 2025 operational emissions",
                        "jurisdiction": "CN-GD",
                        "reason": "",
                    }
                    body = encode_entry(
                        seq=seq,
                        prev=prev,
                        time=t,
                        type="credit.retire",
                        actor=actor_of[src],
                        data={"retirement": record},
                    )
                    retire_rows.append(
                        (
                            seq,
                            record["certificate"],
                            qty,
                            record["beneficiary"],
                            record["purpose"],
                            record["jurisdiction"],
                            record["reason"],
                            src,
                            b,
                        )
                    )
                    add_entry((seq, body, "credit.retire"))
                    stats.retirements += 1
                else:
                    dst = holding_accounts[rng.randrange(len(holding_accounts))]
                    while dst == src:
                        dst = holding_accounts[rng.randrange(len(holding_accounts))]
                    qty = rng.randint(1, max(1, bal // 3))
                    h_src[0] -= qty
                    h_dst = holdings.get((dst, b))
                    if h_dst is None:
                        h_dst = holdings[(dst, b)] = [0, 0]
                        senders.append(dst)
                    h_dst[0] += qty
                    actor = actor_of[src]
                    if exact:
                        body = encode_entry(
                            seq=seq,
                            prev=prev,
                            time=t,
                            type="credit.transfer",
                            actor=actor,
                            data={"batch": b, "from": src, "to": dst, "quantity": qty},
                        )
                    else:
                        body = (_TRANSFER % (actor, b, src, qty, dst, prev.hex(), seq, t)).encode()
                        if i < EXACT_CHECK_FIRST or i % EXACT_CHECK_EVERY == 0:
                            exact_body = encode_entry(
                                seq=seq,
                                prev=prev,
                                time=format_time(times.moment(times.base_us + i * TIME_STEP_US)),
                                type="credit.transfer",
                                actor=actor,
                                data={"batch": b, "from": src, "to": dst, "quantity": qty},
                            )
                            if exact_body != body:
                                raise AssertionError(
                                    f"template encoding differs from encode_entry at {seq}:\n"
                                    f"{body!r}\n{exact_body!r}"
                                )
                            stats.exact_checks += 1
                    add_entry((seq, body, "credit.transfer"))
                    stats.transfers += 1
                prev = sha256(body).digest()
                # The entry's MAC (ledger/entry_auth.py), as every append writes it.
                entry_rows[-1] += (entry_mac(prev) if seq >= mac_since else None,)
                add_nodes(frontier.append(leaf_hash(body)))
                if cp_sizes and frontier.size == cp_sizes[0]:
                    root = frontier.root()
                    note = checkpoint_sign(CheckpointBody(origin, frontier.size, root), signer)
                    cp_rows.append(
                        (
                            frontier.size,
                            root,
                            note,
                            signer.name,
                            signer.key_hash.hex(),
                            dt.datetime.now(dt.UTC),
                        )
                    )
                    cp_sizes.pop(0)
            assert prev == entry_hash(entry_rows[-1][1])
            tc = time.perf_counter()
            loader.put(entry_rows, node_rows)
            copy_wait += time.perf_counter() - tc
            stats.merkle_nodes += len(node_rows)
            if pbar is not None:
                pbar.update(len(entry_rows))
        tc = time.perf_counter()
        loader.finish()
        copy_wait += time.perf_counter() - tc
        if pbar is not None:
            pbar.close()
        stats.timings["generate entries (Python)"] = time.perf_counter() - t1 - copy_wait
        stats.timings["waiting for COPY (overlapped)"] = copy_wait
        stats.timings_info["COPY entries + nodes (loader thread busy)"] = loader.busy

        t2 = time.perf_counter()
        with cur.copy(
            "COPY ledger_retirement (entry_seq, certificate, quantity, beneficiary, purpose, "
            "jurisdiction, reason, account_id, batch_id) FROM STDIN"
        ) as copy:
            for row in retire_rows:
                copy.write_row(row)
        for b, add in retired_add.items():
            if add:
                cur.execute(
                    "UPDATE ledger_batch SET retired = retired + %s WHERE id = %s", (add, b)
                )
        cur.execute(
            "CREATE TEMP TABLE bench_holding_load (account_id bigint, batch_id bigint, "
            "tradable bigint, escrowed bigint) ON COMMIT DROP"
        )
        with cur.copy("COPY bench_holding_load FROM STDIN") as copy:
            for (a, b), (t, e) in holdings.items():
                copy.write_row((a, b, t, e))
        cur.execute(
            "INSERT INTO ledger_holding (account_id, batch_id, tradable, escrowed) "
            "SELECT account_id, batch_id, tradable, escrowed FROM bench_holding_load "
            "ON CONFLICT (account_id, batch_id) DO UPDATE "
            "SET tradable = EXCLUDED.tradable, escrowed = EXCLUDED.escrowed"
        )
        stats.holdings = len(holdings)
        cur.execute(
            "UPDATE ledger_ledgerhead SET size = %s, last_hash = %s WHERE id = 1", (n, prev)
        )
        cur.execute("UPDATE ledger_treehead SET size = %s WHERE id = 1", (n,))
        with cur.copy(
            "COPY ledger_checkpoint (size, root, note, key_name, key_hash, created_at) FROM STDIN"
        ) as copy:
            for row in cp_rows:
                copy.write_row(row)
        cur.execute(
            "CREATE TABLE IF NOT EXISTS bench_build_info (entries bigint, seed int, "
            "key_hash text, exact boolean, built_at timestamptz DEFAULT now())"
        )
        cur.execute(
            "INSERT INTO bench_build_info (entries, seed, key_hash, exact) VALUES (%s, %s, %s, %s)",
            (n, seed, signer.key_hash.hex(), exact),
        )
        conn.commit()
        stats.timings["retirements, holdings, heads, checkpoints"] = time.perf_counter() - t2
        stats.checkpoints = len(cp_rows) + 1  # + the world's, issued by the service
        stats.entries = n

    if vacuum:
        # Set hint bits and the visibility map now, so the first reader (a benchmark's
        # baseline) does not pay for writing them.
        t3 = time.perf_counter()
        with psycopg.connect(common.libpq_url(dsn), autocommit=True) as conn:
            for t in (
                "ledger_ledgerentry",
                "ledger_merklenode",
                "ledger_retirement",
                "ledger_holding",
                "ledger_checkpoint",
            ):
                conn.execute(f"VACUUM (ANALYZE) {t}")
        stats.timings["VACUUM ANALYZE"] = time.perf_counter() - t3
    stats.timings["total"] = time.perf_counter() - t0
    return stats


# ---- a floor to compare against: COPY of ready-made rows ----------------------------------


def copy_floor(dsn: str, rows: int = 50_000) -> float:
    """Rows/s of COPYing ready-made ledger-entry-shaped rows (same sizes, primary key and
    type indexes) into a scratch table: the fastest any builder could load entries."""
    import psycopg
    from psycopg.copy import QueuedLibpqWriter

    body = b"x" * 240
    with psycopg.connect(common.libpq_url(dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE bench_copy_floor (seq bigint PRIMARY KEY, body bytea NOT NULL, "
            "type varchar(32) NOT NULL)"
        )
        cur.execute("CREATE INDEX ON bench_copy_floor (type)")
        cur.execute("CREATE INDEX ON bench_copy_floor (type varchar_pattern_ops)")
        conn.commit()
        started = time.perf_counter()
        with cur.copy(
            "COPY bench_copy_floor (seq, body, type) FROM STDIN (FORMAT BINARY)",
            writer=QueuedLibpqWriter(cur),
        ) as copy:
            copy.set_types(["int8", "bytea", "varchar"])
            for i in range(rows):
                copy.write_row((i, body, "credit.transfer"))
        conn.commit()
        elapsed = time.perf_counter() - started
        cur.execute("DROP TABLE bench_copy_floor")
        conn.commit()
    return common.rate(rows, elapsed)


def run_ledger_verify(dsn: str) -> tuple[int, str]:
    """``manage.py ledger_verify --no-progress`` against ``dsn``, as an operator would run it."""
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        env = {**os.environ, "DATABASE_URL": dsn}
        env.setdefault("CELERY_BROKER_URL", "memory://localhost/")
        proc = subprocess.run(
            [
                sys.executable,
                str(common.PROJECT_ROOT / "manage.py"),
                "ledger_verify",
                "--no-progress",
                "--state-file",
                str(Path(tmp) / "state.json"),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def print_report(stats: BuildStats, floor: float | None) -> None:
    bulk = stats.entries - stats.world_entries
    total = stats.timings["total"]
    rows = [
        (name, f"{secs:8.2f}", f"{100 * secs / total:5.1f} %")
        for name, secs in stats.timings.items()
        if name != "total"
    ]
    rows.append(("total", f"{total:8.2f}", "100.0 %"))
    print(common.table(["phase", "seconds", "share"], rows))
    for name, secs in stats.timings_info.items():
        print(f"  ({name}: {secs:.2f} s, overlapped with generation)")
    print()
    gen = (
        stats.timings["generate entries (Python)"] + stats.timings["waiting for COPY (overlapped)"]
    )
    bulk_rate = common.rate(bulk, gen)
    lines = [
        ("ledger entries", f"{stats.entries:,}"),
        ("  world, through services", f"{stats.world_entries:,}"),
        ("  credit.transfer (bulk)", f"{stats.transfers:,}"),
        ("  credit.retire (bulk)", f"{stats.retirements:,}"),
        ("merkle nodes (bulk)", f"{stats.merkle_nodes:,}"),
        ("signed checkpoints", f"{stats.checkpoints}"),
        ("holding accounts x batches", f"{stats.accounts} x {stats.batches}"),
        ("holdings", f"{stats.holdings:,}"),
        ("template bodies checked == encode_entry", f"{stats.exact_checks:,}"),
        ("bulk rate (generate + COPY), entries/s", f"{bulk_rate:,.0f}"),
        (
            "overall rate incl. world and vacuum, entries/s",
            f"{common.rate(stats.entries, total):,.0f}",
        ),
    ]
    if floor:
        lines.append(("baseline: bare COPY of ready rows, rows/s", f"{floor:,.0f}"))
        lines.append(("ratio bulk rate / bare COPY", f"{bulk_rate / floor:.2f}"))
    print(common.table(["", "value"], lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=None, help="ledger size (default 1,000,000)")
    parser.add_argument("--db", help="build into this database (kept); default: a scratch one")
    parser.add_argument("--replace", action="store_true", help="drop --db first if it exists")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--verify", action="store_true", help="run manage.py ledger_verify after")
    parser.add_argument("--exact", action="store_true", help="encode every entry with encode_entry")
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--quick", action="store_true", help="CI: 20,000 entries, verified by ledger_verify"
    )
    args = parser.parse_args()
    n = args.entries or (20_000 if args.quick else 1_000_000)
    verify = args.verify or args.quick

    server = common.server_url()
    name = args.db or f"bench_bluecarbon_{os.getpid()}"
    keep = bool(args.db) or args.keep
    if args.db and common.database_exists(server, name):
        if not args.replace:
            import psycopg

            with psycopg.connect(common.libpq_url(common.with_database(server, name))) as c:
                has = c.execute("SELECT to_regclass('ledger_ledgerentry')").fetchone()[0]
                if (
                    has
                    and c.execute("SELECT EXISTS (SELECT 1 FROM ledger_ledgerentry)").fetchone()[0]
                ):
                    sys.exit(f"database {name} already holds a ledger; use --replace to rebuild it")
        else:
            common.drop_database(server, name)
    if not common.database_exists(server, name):
        common.create_database(server, name)
    dsn = common.with_database(server, name)
    common.log(f"building {n:,} entries into {name}")
    try:
        stats = build(
            n, dsn, seed=args.seed, accounts=args.accounts, batches=args.batches, exact=args.exact
        )
        floor = copy_floor(dsn, 20_000 if args.quick else 100_000)
        print(f"build_ledger: {n:,} entries into {name}")
        print_report(stats, floor)
        if verify:
            common.log("running manage.py ledger_verify --no-progress")
            started = time.perf_counter()
            code, out = run_ledger_verify(dsn)
            print()
            print(f"manage.py ledger_verify (exit {code}, {time.perf_counter() - started:.1f} s):")
            print("  " + out.replace("\n", "\n  "))
            if code != 0:
                sys.exit(1)
    finally:
        common.close_django_connections()
        if not keep:
            common.drop_database(server, name)
        else:
            print(f"\nkept database {name}: DATABASE_URL={dsn}")


if __name__ == "__main__":
    main()
