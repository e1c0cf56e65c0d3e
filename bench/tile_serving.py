"""Tile serving: full C2SP tlog-tiles through the API vs the same bytes as static files, both
from the README's production web server (Granian), measured in the same run.

Setup (not timed): a scratch PostgreSQL database with a ledger of ``--entries`` entries
(``build_ledger.build``); the server started with the README's production command plus
``--static-path-mount DIR --static-path-route /bench-static``, DIR holding, for each tile the
clients ask for, the exact bytes the API answered for it (fetched once through the API).

Phases, same clients (``--clients`` processes, one keep-alive connection each, cycling over
``--tiles`` different full tiles so that no single row stays hot):

* static hash tile     ``GET /bench-static/tile/0/<N>``: Granian's own file serving, no Python;
* API hash tile        ``GET /api/v1/ledger/tlog/tile/0/<N>``: Django, one indexed range read;
* static entry bundle  ``GET /bench-static/tile/entries/<N>``;
* API entry bundle     ``GET /api/v1/ledger/tlog/tile/entries/<N>`` (uncompressed, as the
  static file: the clients do not send ``Accept-Encoding``).

Every answer is compared with the expected bytes (a fast wrong answer cannot pass). Target
(issue 12): the API answers full tiles at >= 0.5 x the static rate. A missed target is printed,
the exit status stays 0; a wrong or failed answer exits 1.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/tile_serving.py [--entries N] [--clients 8] [--seconds 8] [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as common

from tests import server as web  # the README's production command

API = "/api/v1/ledger/tlog/"
STATIC = "/bench-static/"
TARGET = 0.5


def _client(
    port: int, paths: list[str], bodies: list[bytes], seconds: float, start_at: float, out: mp.Queue
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", paths[0])  # warm the connection untimed
    conn.getresponse().read()
    while time.time() < start_at:
        time.sleep(0.001)
    end, latencies, wrong, samples, i = start_at + seconds, [], 0, [], 0
    while time.time() < end:
        k = i % len(paths)
        i += 1
        t = time.perf_counter()
        conn.request("GET", paths[k])
        r = conn.getresponse()
        data = r.read()
        latencies.append(time.perf_counter() - t)
        if r.status != 200 or data != bodies[k]:
            wrong += 1
            if len(samples) < 2:
                samples.append(f"{paths[k]}: {r.status} {data[:120]!r}")
    out.put((latencies, wrong, samples))


def _phase(
    port: int,
    paths: list[str],
    bodies: list[bytes],
    clients: int,
    seconds: float,
    sessions: dict[str, int],
) -> dict:
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    start_at = time.time() + 1.0
    procs = [
        ctx.Process(target=_client, args=(port, paths, bodies, seconds, start_at, out))
        for _ in range(clients)
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
    n = len(latencies)
    return {
        "n": n,
        "rate": common.rate(n, seconds),
        "mb": sum(len(bodies[i % len(bodies)]) for i in range(n)) / seconds / 1e6,
        "p50": latencies[n // 2] * 1000 if n else 0,
        "p99": latencies[int(n * 0.99)] * 1000 if n else 0,
        "wrong": sum(r[1] for r in results),
        "samples": [s for r in results for s in r[2]][:2],
        "cpu_ms": {k: (after[k] - before[k]) * 1000 / max(1, n) for k in after},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--tiles", type=int, default=32, help="distinct full tiles asked for")
    parser.add_argument("--quick", action="store_true", help="CI: 20,000 entries, 3 s phases")
    args = parser.parse_args()
    n, seconds = (20_000, 3.0) if args.quick else (args.entries, args.seconds)
    tiles = min(args.tiles, n // 256 - 1)
    server = common.server_url()
    os.environ.setdefault("DEBUG", "0")
    name = f"bench_bluecarbon_tiles_{os.getpid()}"
    dsn = common.create_database(server, name)
    proc = None
    failed = False
    try:
        import build_ledger

        common.log(f"building {n:,} entries")
        build_ledger.build(n, dsn, progress=common.on_terminal())
        common.close_django_connections()
        static_dir = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
        port = web.free_port()
        argv = web.readme_command(port)
        # Static files from the same server, as its README line suggests for /static/.
        argv[-1:-1] = [
            "--static-path-mount",
            str(static_dir),
            "--static-path-route",
            STATIC.rstrip("/"),
        ]
        log = open(f"/tmp/{name}-server.log", "wb")  # noqa: SIM115
        env = dict(os.environ, DATABASE_URL=dsn, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            argv,
            cwd=common.PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for _ in range(150):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        # The bytes the API answers for each tile, written where the static route serves them.
        kinds = {}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for kind in ("0", "entries"):
            paths, bodies = [], []
            for index in range(tiles):
                rel = f"tile/{kind}/{index:03d}"
                conn.request("GET", API + rel)
                r = conn.getresponse()
                body = r.read()
                if r.status != 200 or len(body) < 8192:
                    raise SystemExit(f"{API + rel}: {r.status} {body[:200]!r}")
                (static_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (static_dir / rel).write_bytes(body)
                paths.append(rel)
                bodies.append(body)
            kinds[kind] = (paths, bodies)
        conn.close()
        sessions = {"server": proc.pid}
        results = {}
        for kind, label in (("0", "hash tile"), ("entries", "entry bundle")):
            paths, bodies = kinds[kind]
            for where, prefix in (("static", STATIC), ("API", API)):
                common.log(f"{where} {label}: {args.clients} clients, {seconds:.0f} s")
                results[(kind, where)] = _phase(
                    port, [prefix + p for p in paths], bodies, args.clients, seconds, sessions
                )
        rows = []
        for (kind, where), r in results.items():
            label = "hash tile" if kind == "0" else "entry bundle"
            rows.append(
                (
                    f"{where} {label}",
                    f"{r['n']:,}",
                    f"{r['rate']:,.0f}",
                    f"{r['mb']:.1f}",
                    f"{r['p50']:.2f}",
                    f"{r['p99']:.2f}",
                    f"{r['cpu_ms']['server']:.2f}",
                    f"{r['cpu_ms']['database']:.2f}",
                    r["wrong"],
                )
            )
        print(
            f"tile_serving: {n:,} entries, {tiles} distinct full tiles per kind, "
            f"{args.clients} clients, {seconds:.0f} s per phase, README production command"
        )
        print(
            common.table(
                [
                    "",
                    "requests",
                    "per s",
                    "MB/s",
                    "p50 ms",
                    "p99 ms",
                    "server CPU ms/req",
                    "db CPU ms/req",
                    "wrong",
                ],
                rows,
            )
        )
        print()
        for kind, label in (("0", "hash tile"), ("entries", "entry bundle")):
            ratio = results[(kind, "API")]["rate"] / results[(kind, "static")]["rate"]
            verdict = "met" if ratio >= TARGET else "NOT met"
            print(f"ratio API / static, {label}: {ratio:.3f}  (target >= {TARGET}: {verdict})")
        for r in results.values():
            for s in r["samples"]:
                print("wrong answer:", s)
            failed = failed or bool(r["wrong"])
    finally:
        common.stop_processes([proc] if proc is not None else [])
        common.close_django_connections()
        common.drop_database(server, name)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
