"""Full ledger verification throughput and memory vs a bare streaming baseline, same run.

Builds a 1,000,000-entry ledger with ``build_ledger.build`` (or reuses one with ``--reuse``),
then measures:

(a) baseline: a bare psycopg loop streaming ``SELECT seq, body FROM ledger_ledgerentry ORDER BY
    seq`` through a server-side cursor (5,000 rows per fetch, as the verifier) and SHA-256-ing
    every body. Run before and after (b); the mean is the baseline.
(b) ``ledger.verify.verify_ledger`` with ``ledger.signing.trusted_verifiers()``: chain, Merkle
    root and signature of every checkpoint, replay, record and table comparison, in a fresh
    child process (spawned, ``django.setup()``), whose peak RSS (VmHWM) is reported, and that of
    the worker processes of the parallel path (``ledger/verify_parallel.py``), if it ran.
(c) informational: the same stream read the way the parallel path reads it, ``COPY (SELECT seq,
    body ...) TO STDOUT (FORMAT BINARY)`` with the messages taken straight from libpq, each body
    SHA-256-ed. The target is judged against (a); the ratio to (c) is printed too.

Targets: verify/baseline >= 0.7, peak RSS < 300 MB (the verifying process and its workers).
``--profile`` additionally profiles a verification (pyinstrument if installed, else cProfile;
the main process only) and prints the top costs.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/verify_throughput.py [--entries N] [--reuse] [--profile] [--quick]

``--reuse`` keeps the ledger in ``bench_bluecarbon_ledger_<N>`` (built on first use, checked
against ``bench_build_info`` and the current signing key afterwards) instead of a scratch
database that is dropped; ``--drop`` removes it at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import sys
import time

import _common as common

ITERSIZE = 5000  # ledger.verify_walk.stream_rows' chunk


def _proc_status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for text in fh:
            if text.startswith(field + ":"):
                return int(text.split()[1]) / 1024
    return 0.0


def baseline(dsn: str) -> tuple[int, float]:
    """Stream every (seq, body) in order through a server-side cursor and SHA-256 it."""
    import psycopg

    sha256 = hashlib.sha256
    n = 0
    with psycopg.connect(common.libpq_url(dsn)) as conn:
        started = time.perf_counter()
        with conn.transaction(), conn.cursor(name="bench_baseline") as cur:
            cur.itersize = ITERSIZE
            cur.execute("SELECT seq, body FROM ledger_ledgerentry ORDER BY seq")
            for _seq, body in cur:
                sha256(body).digest()
                n += 1
        elapsed = time.perf_counter() - started
    return n, elapsed


def baseline_copy(dsn: str) -> tuple[int, float]:
    """Stream every (seq, body) in order with COPY BINARY, as the parallel verifier does (one
    message per row from libpq, psycopg's Copy.read only to wait), and SHA-256 each body."""
    import struct

    import psycopg

    sha256, length = hashlib.sha256, struct.Struct(">i").unpack_from
    header = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
    n = 0
    with psycopg.connect(common.libpq_url(dsn)) as conn:
        started = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(
                "COPY (SELECT seq, body FROM ledger_ledgerentry ORDER BY seq) "
                "TO STDOUT (FORMAT BINARY)"
            ) as copy,
        ):
            get = conn.pgconn.get_copy_data
            data = bytes(copy.read())
            assert data.startswith(header)
            data = data[len(header) :]
            while len(data) > 2:  # the trailer is 2 bytes, a row more
                (size,) = length(data, 14)  # 2 (columns) + 4 + 8 (seq) before the body length
                sha256(data[18 : 18 + size]).digest()
                n += 1
                nbytes, data = get(1)  # 1: without waiting, most messages are buffered
                if nbytes == 0:
                    data = copy.read()
                data = bytes(data)
            assert not copy.read()
        elapsed = time.perf_counter() - started
    return n, elapsed


def _verify_child(dsn: str, out: mp.Queue, profile: str | None) -> None:
    os.environ.setdefault("CELERY_BROKER_URL", "memory://localhost/")
    common.django_setup(dsn)
    from django.db import connection

    from ledger.signing import trusted_verifiers
    from ledger.verify import VerificationError, verify_ledger

    connection.ensure_connection()
    verifiers = trusted_verifiers()
    rss_ready = _proc_status_mb("VmRSS")
    pbar = common.bar(None, "verify_ledger", " entries")
    kwargs = {}
    if common.on_terminal():
        kwargs = {"progress": pbar.update, "on_total": lambda t: setattr(pbar, "total", t)}
    result: dict = {"rss_ready": rss_ready}
    profiler = None
    if profile == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    elif profile == "cprofile":
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    try:
        report = verify_ledger(verifiers=verifiers, **kwargs)
    except VerificationError as exc:
        result["error"] = str(exc)
    else:
        result.update(
            entries=report.entries,
            checkpoints=report.checkpoints,
            records=report.records,
            notes=report.notes,
            workers_hwm=report.worker_peak_rss_mb,
        )
    result["seconds"] = time.perf_counter() - started
    pbar.close()
    if profile == "pyinstrument":
        profiler.stop()
        result["profile"] = profiler.output_text(unicode=False, color=False, show_all=False)
    elif profile == "cprofile":
        import io
        import pstats

        profiler.disable()
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(25)
        result["profile"] = buf.getvalue()
    result["hwm"] = _proc_status_mb("VmHWM")
    out.put(result)


def run_verify(dsn: str, profile: str | None = None) -> dict:
    """verify_ledger in a fresh spawned process. Its peak RSS is read from its own
    /proc/self/status VmHWM: getrusage(RUSAGE_CHILDREN).ru_maxrss would also count the
    parent's pages the child inherits between fork and exec (Linux keeps maxrss across
    exec), i.e. report the builder's ~200 MB when the ledger was just built in-process."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=_verify_child, args=(dsn, out, profile))
    p.start()
    result = out.get()
    p.join()
    return result


def _reusable(dsn: str, n: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(common.libpq_url(dsn)) as conn:
            if conn.execute("SELECT to_regclass('bench_build_info')").fetchone()[0] is None:
                return False
            row = conn.execute(
                "SELECT entries, key_hash FROM bench_build_info ORDER BY built_at DESC LIMIT 1"
            ).fetchone()
            size = conn.execute("SELECT size FROM ledger_ledgerhead WHERE id = 1").fetchone()
    except psycopg.Error:
        return False
    if row is None or size is None or row[0] != n or size[0] != n:
        return False
    from ledger.signing import get_signer

    return row[1] == get_signer().key_hash.hex()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=None, help="default 1,000,000")
    parser.add_argument(
        "--reuse", action="store_true", help="keep/reuse the ledger in bench_bluecarbon_ledger_<N>"
    )
    parser.add_argument("--db", help="with --reuse: the database name to keep the ledger in")
    parser.add_argument("--drop", action="store_true", help="with --reuse: drop it at the end")
    parser.add_argument(
        "--profile",
        choices=["auto", "pyinstrument", "cprofile"],
        nargs="?",
        const="auto",
        help="also profile one verification and print top costs",
    )
    parser.add_argument("--quick", action="store_true", help="CI: 20,000 entries")
    args = parser.parse_args()
    n = args.entries or (20_000 if args.quick else 1_000_000)

    server = common.server_url()
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://localhost/")
    name = (
        (args.db or f"bench_bluecarbon_ledger_{n}")
        if args.reuse
        else (f"bench_bluecarbon_{os.getpid()}")
    )
    dsn = common.with_database(server, name)
    keep = args.reuse and not args.drop
    if not common.database_exists(server, name):
        common.create_database(server, name)
    try:
        common.django_setup(dsn)
        built = None
        if args.reuse and _reusable(dsn, n):
            common.log(f"reusing the {n:,}-entry ledger in {name}")
        else:
            if args.reuse:
                common.close_django_connections()
                common.drop_database(server, name)
                common.create_database(server, name)
            from build_ledger import build

            common.log(f"building {n:,} entries into {name}")
            built = build(n, dsn)
            common.log(f"built in {built.timings['total']:.1f} s")
        common.close_django_connections()

        common.log("baseline: streaming + SHA-256 (warm-up pass)")
        baseline(dsn)
        common.log("baseline: timed pass 1")
        b1 = baseline(dsn)
        common.log("verify_ledger in a child process")
        v = run_verify(dsn)
        common.log("baseline: timed pass 2")
        b2 = baseline(dsn)
        common.log("informational baseline: COPY BINARY + SHA-256")
        c1 = baseline_copy(dsn)
        if "error" in v:
            print(f"verify_ledger FAILED: {v['error']}")
            sys.exit(1)

        base_rate = (common.rate(*b1) + common.rate(*b2)) / 2
        v_rate = common.rate(v["entries"], v["seconds"])
        ratio = v_rate / base_rate
        copy_rate = common.rate(*c1)
        workers_hwm = v.get("workers_hwm", [])
        total_hwm = v["hwm"] + sum(workers_hwm)
        print(
            f"verify_throughput: {n:,} entries, {v['checkpoints']} checkpoints, "
            f"{v['records']:,} records, database {name}"
            + (f" (built in {built.timings['total']:.1f} s)" if built else " (reused)")
        )
        rows = [
            (
                "baseline: stream + SHA-256, pass 1",
                f"{b1[0]:,}",
                f"{b1[1]:.2f}",
                f"{common.rate(*b1):,.0f}",
                "",
            ),
            (
                "baseline: stream + SHA-256, pass 2",
                f"{b2[0]:,}",
                f"{b2[1]:.2f}",
                f"{common.rate(*b2):,.0f}",
                "",
            ),
            (
                "verify_ledger (full, with replay)",
                f"{v['entries']:,}",
                f"{v['seconds']:.2f}",
                f"{v_rate:,.0f}",
                f"{total_hwm:.0f}",
            ),
            (
                "informational: COPY BINARY + SHA-256",
                f"{c1[0]:,}",
                f"{c1[1]:.2f}",
                f"{copy_rate:,.0f}",
                "",
            ),
        ]
        print(common.table(["", "entries", "seconds", "entries/s", "peak RSS MB"], rows))
        print()
        if n >= 1_000_000:
            verdict = "met" if ratio >= 0.7 else "NOT met"
        else:  # below the target's size the verifier may run its serial path
            verdict = f"not judged: the target is for 1,000,000 entries, this ran {n:,}"
        print(f"ratio verify / baseline: {ratio:.3f}  (target >= 0.7: {verdict})")
        print(
            f"ratio verify / COPY baseline (informational): {v_rate / copy_rate:.3f}"
            if copy_rate
            else "COPY baseline: no rows"
        )
        workers = (
            f" + {len(workers_hwm)} workers {' + '.join(f'{w:.0f}' for w in workers_hwm)} MB"
            if workers_hwm
            else " (serial path, no workers)"
        )
        print(
            f"verify peak RSS: {total_hwm:.0f} MB = {v['hwm']:.0f} MB VmHWM of the verifying "
            f"process{workers} ({v['rss_ready']:.0f} MB after django.setup(), before verifying)  "
            f"(target < 300 MB: {'met' if total_hwm < 300 else 'NOT met'})"
        )
        print(
            f"per entry: baseline {1e6 / base_rate:.1f} us, verify {1e6 / v_rate:.1f} us, "
            f"COPY baseline {1e6 / copy_rate if copy_rate else 0:.1f} us"
        )

        if args.profile:
            mode = args.profile
            if mode == "auto":
                try:
                    import pyinstrument  # noqa: F401

                    mode = "pyinstrument"
                except ImportError:
                    mode = "cprofile"
            common.log(f"profiling a verification with {mode} (not timed)")
            p = run_verify(dsn, profile=mode)
            print(f"\nprofile ({mode}), verification took {p['seconds']:.1f} s under the profiler:")
            print(p.get("profile", ""))
    finally:
        common.close_django_connections()
        if keep:
            print(f"\nkept database {name} (--reuse): DATABASE_URL={dsn}")
        else:
            common.drop_database(server, name)


if __name__ == "__main__":
    main()
