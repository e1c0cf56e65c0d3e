"""``bluecarbon-audit verify`` of a tile directory vs a bare loop over the same bundles, same run.

Builds a ledger with ``build_ledger.build`` (1,000,000 entries; ``--reuse`` keeps it in
``bench_audit_verify_<N>`` or ``--db`` and reuses it while its signing key matches), writes it
as C2SP tlog-tiles with ``manage.py ledger_export_tiles`` (timed, informational), then measures:

(a) baseline: one process reads every entry bundle of the directory, splits it and computes each
    entry's leaf hash SHA-256(0x00 || entry) and chain hash SHA-256(entry): the least any
    verifier must do. Run before and after (b); the mean is the baseline.
(b) ``bluecarbon-audit verify DIR --no-replay`` as an auditor runs it (the installed command, a
    subprocess, its worker processes): canonical bytes, seq, chain, every tile, the tree, every
    checkpoint's signature and root;
(c) ``bluecarbon-audit verify DIR``: (b) and the registry and auction replay;
(d) ``manage.py ledger_verify``'s ``verify_ledger`` on the same database (as
    ``verify_throughput.py`` runs it), for (c)'s ratio.

Peak memory is the sum of the verifying process's and its workers' resident sets, sampled every
50 ms from /proc. Targets (issue 12): (b) >= 200,000 entries/s and >= 0.7 x (a); (c) >= 0.7 x
(d); peak < 200 MB. ``--quick`` (CI): 20,000 entries, ratios printed but not judged (the
verifier starts its worker processes from 50,000 entries).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/audit_verify.py [--entries N] [--reuse] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _common as common

BIN = Path(sys.executable).parent


def baseline(root: Path, size: int) -> tuple[int, float]:
    """Read each bundle, split it, leaf-hash and chain-hash each entry."""
    from bluecarbon_audit.tiles import ENTRIES, ENTRIES_U32, TileRef, decode_bundle, tile_width

    sha256 = hashlib.sha256
    n = 0
    started = time.perf_counter()
    for index in range(-(-size // 256)):
        width = tile_width(0, index, size)
        path = root / TileRef(ENTRIES, index, width).path
        kind = ENTRIES
        if not path.exists():
            path, kind = root / TileRef(ENTRIES_U32, index, width).path, ENTRIES_U32
        for entry in decode_bundle(path.read_bytes(), width, kind):
            sha256(b"\x00" + entry).digest()
            sha256(entry).digest()
            n += 1
    return n, time.perf_counter() - started


def _tree_rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants, in kB (0 for processes already gone)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return total


def run_audit(root: Path, keys: list[str], *extra: str) -> dict:
    """The installed command on ``root``; its JSON report, wall seconds and peak tree RSS."""
    argv = [str(BIN / "bluecarbon-audit"), "verify", str(root), "--json", *extra]
    for key in keys:
        argv += ["--key", key]
    peak = 0
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kb(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bluecarbon-audit failed ({proc.returncode}): {err.decode()}")
    report = json.loads(out)
    return {"report": report, "seconds": seconds, "peak_mb": peak / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=None, help="default 1,000,000")
    parser.add_argument(
        "--reuse", action="store_true", help="keep/reuse the ledger in --db (as verify_throughput)"
    )
    parser.add_argument(
        "--db", help="with --reuse: the database to keep it in (default bench_audit_verify_<N>)"
    )
    parser.add_argument("--drop", action="store_true", help="with --reuse: drop it at the end")
    parser.add_argument("--dir", help="tile directory to (re)use (default: a temporary one)")
    parser.add_argument("--quick", action="store_true", help="CI: 20,000 entries")
    parser.add_argument("--no-ledger-verify", action="store_true", help="skip (d)")
    args = parser.parse_args()
    n = args.entries or (20_000 if args.quick else 1_000_000)

    server = common.server_url()
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://localhost/")
    name = (
        (args.db or f"bench_audit_verify_{n}") if args.reuse else f"bench_bluecarbon_{os.getpid()}"
    )
    dsn = common.with_database(server, name)
    keep = args.reuse and not args.drop
    if not common.database_exists(server, name):
        common.create_database(server, name)
    tmp = Path(tempfile.mkdtemp(prefix="audit-verify-"))
    # The checkpoint signer's own state belongs to this scratch ledger, not to the var dir's.
    os.environ.setdefault("LEDGER_SIGNER_STATE_FILE", str(tmp / "signer-state.json"))
    try:
        common.django_setup(dsn)
        from verify_throughput import _reusable, run_verify

        if args.reuse and _reusable(dsn, n):
            common.log(f"reusing the {n:,}-entry ledger in {name}")
        else:
            if args.reuse:
                common.close_django_connections()
                common.drop_database(server, name)
                common.create_database(server, name)
            from build_ledger import build

            common.log(f"building {n:,} entries into {name}")
            build(n, dsn)
        from django.core.management import call_command

        from ledger.signing import trusted_verifiers

        keys = [v.to_string() for v in trusted_verifiers()]
        root = Path(args.dir) if args.dir else tmp / "log"
        common.log(f"ledger_export_tiles {root}")
        started = time.perf_counter()
        said = io.StringIO()
        call_command("ledger_export_tiles", str(root), "--no-sync", stdout=said)
        export_seconds = time.perf_counter() - started
        exported = "up to date" not in said.getvalue()
        common.close_django_connections()
        size = int((root / "checkpoint").read_text().split("\n")[1])

        common.log("baseline (warm-up pass)")
        baseline(root, size)
        common.log("baseline: timed pass 1")
        b1 = baseline(root, size)
        common.log("bluecarbon-audit verify --no-replay")
        chain = run_audit(root, keys, "--no-replay")
        common.log("bluecarbon-audit verify (with replay)")
        full = run_audit(root, keys)
        common.log("baseline: timed pass 2")
        b2 = baseline(root, size)
        lv = None
        if not args.no_ledger_verify:
            common.log("ledger_verify (verify_ledger) in a child process")
            lv = run_verify(dsn)
        for name_, run in (("--no-replay", chain), ("full", full)):
            if not run["report"]["ok"]:
                print(f"bluecarbon-audit verify {name_} FAILED: {run['report']['failure']}")
                sys.exit(1)

        base_rate = (common.rate(*b1) + common.rate(*b2)) / 2
        chain_rate = common.rate(size, chain["seconds"])
        full_rate = common.rate(size, full["seconds"])
        rows = []
        if exported:
            rows.append(
                (
                    "ledger_export_tiles (informational)",
                    f"{size:,}",
                    f"{export_seconds:.2f}",
                    f"{common.rate(size, export_seconds):,.0f}",
                    "",
                )
            )
        rows += [
            (
                "baseline: read bundles + leaf & chain hash, 1",
                f"{b1[0]:,}",
                f"{b1[1]:.2f}",
                f"{common.rate(*b1):,.0f}",
                "",
            ),
            (
                "baseline: read bundles + leaf & chain hash, 2",
                f"{b2[0]:,}",
                f"{b2[1]:.2f}",
                f"{common.rate(*b2):,.0f}",
                "",
            ),
            (
                "bluecarbon-audit verify --no-replay",
                f"{size:,}",
                f"{chain['seconds']:.2f}",
                f"{chain_rate:,.0f}",
                f"{chain['peak_mb']:.0f}",
            ),
            (
                "bluecarbon-audit verify (full replay)",
                f"{size:,}",
                f"{full['seconds']:.2f}",
                f"{full_rate:,.0f}",
                f"{full['peak_mb']:.0f}",
            ),
        ]
        lv_rate = None
        if lv is not None and "error" not in lv:
            lv_rate = common.rate(lv["entries"], lv["seconds"])
            rows.append(
                (
                    "manage.py ledger_verify (verify_ledger)",
                    f"{lv['entries']:,}",
                    f"{lv['seconds']:.2f}",
                    f"{lv_rate:,.0f}",
                    f"{lv['hwm']:.0f}",
                )
            )
        print(
            f"audit_verify: {size:,} entries, {len(full['report']['checkpoints'])} checkpoints, "
            f"tile directory {root}"
        )
        print(common.table(["", "entries", "seconds", "entries/s", "peak RSS MB"], rows))
        print()
        judged = size >= 1_000_000

        def verdict(ok: bool) -> str:
            if not judged:
                return f"not judged: the target is for 1,000,000 entries, this ran {size:,}"
            return "met" if ok else "NOT met"

        print(
            f"verify --no-replay: {chain_rate:,.0f} entries/s (target >= 200,000: "
            f"{verdict(chain_rate >= 200_000)})"
        )
        print(
            f"ratio verify --no-replay / baseline: {chain_rate / base_rate:.3f} (target >= 0.7: "
            f"{verdict(chain_rate / base_rate >= 0.7)})"
        )
        if lv_rate:
            print(
                f"ratio verify (full) / ledger_verify: {full_rate / lv_rate:.3f} (target >= 0.7: "
                f"{verdict(full_rate / lv_rate >= 0.7)})"
            )
        elif lv is not None:
            print(f"ledger_verify FAILED on this ledger, no ratio: {lv['error']}")
        peak = max(chain["peak_mb"], full["peak_mb"])
        print(
            f"peak RSS of the verifier and its workers: {peak:.0f} MB (target < 200 MB: "
            f"{verdict(peak < 200)})"
        )
        print(
            f"per entry: baseline {1e6 / base_rate:.2f} us, verify --no-replay "
            f"{1e6 / chain_rate:.2f} us, full {1e6 / full_rate:.2f} us"
        )
    finally:
        common.close_django_connections()
        shutil.rmtree(tmp, ignore_errors=True)
        if not keep:
            common.drop_database(server, name)


if __name__ == "__main__":
    main()
