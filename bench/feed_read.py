"""Feed read: the whole ledger through ``GET /api/v1/ledger/entries`` in pages of 1,000.

Builds N entries with ``build_ledger.build`` into a scratch PostgreSQL database (created on the
server of ``DATABASE_URL``, migrated, dropped at the end), then measures in the same run:

* **bare SQL**: the same pages (``SELECT seq, body, type ... WHERE seq > %s ORDER BY seq LIMIT
  1000``) through Django's connection, rows fetched and nothing else: the baseline;
* **bare SQL + the view's JSON**: the same rows turned into the same JSON (hashes, orjson) in
  Python without Django's request path, to show what the framework itself costs;
* **the endpoint**, through Django's test Client (``django.test.Client``: the full request
  path, URL routing, middleware, the DRF view, throttling, the JSON; in-process, no socket),
  each page parsed by the client with orjson.

Each is run twice after a warm-up and the faster run is reported. Then, untimed, the pages the
endpoint returned are checked the way an outsider would: every entry re-hashed, every chain
link followed, seq numbers contiguous, so a fast wrong answer cannot pass. Target: at least
20,000 entries/s through the endpoint. A missed target is printed, the exit status stays 0; a
failed check exits 1.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/feed_read.py [--entries N] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable

import _common as common

PAGE = 1000
TARGET = 20_000


def best_of(runs: int, fn: Callable[[], int], n: int) -> float:
    """The fastest of ``runs`` timed calls of ``fn``, which must return ``n`` (rows seen)."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        seen = fn()
        elapsed = time.perf_counter() - started
        if seen != n:
            raise SystemExit(f"read {seen:,} entries, expected {n:,}")
        best = min(best, elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=200_000, help="ledger size")
    parser.add_argument("--quick", action="store_true", help="CI: 20,000 entries (~10 s)")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.entries
    server = common.server_url()
    name = f"bench_bluecarbon_feed_{os.getpid()}"
    dsn = common.create_database(server, name)
    failed = False
    try:
        # Production-like settings (no query log), and throttles out of the way: this measures
        # the request path, not the rate limit.
        os.environ["DEBUG"] = "0"
        os.environ["API_ANON_RATE"] = "100000000/min"
        os.environ["API_RATE"] = "100000000/min"
        import build_ledger

        common.log(f"building {n:,} entries")
        build_ledger.build(n, dsn, progress=common.on_terminal())
        import orjson
        from django.db import connection
        from django.test import Client

        from ledger.apis.log import entry_item

        def page_rows(after: int) -> list[tuple[int, bytes, str]]:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT seq, body, type FROM ledger_ledgerentry WHERE seq > %s "
                    "ORDER BY seq LIMIT %s",
                    [after, PAGE],
                )
                return cursor.fetchall()

        def bare() -> int:
            after, seen = -1, 0
            while rows := page_rows(after):
                seen += len(rows)
                after = rows[-1][0]
            return seen

        def bare_with_json() -> int:
            after, seen = -1, 0
            while rows := page_rows(after):
                orjson.dumps({"entries": [entry_item(s, bytes(b), t) for s, b, t in rows]})
                seen += len(rows)
                after = rows[-1][0]
            return seen

        client = Client()
        kept: list[list[dict]] = []

        def endpoint(keep: bool = False) -> int:
            after, seen = -1, 0
            while True:
                r = client.get("/api/v1/ledger/entries", {"after": after, "limit": PAGE})
                if r.status_code != 200:
                    raise SystemExit(f"HTTP {r.status_code}: {r.content[:300]!r}")
                page = orjson.loads(r.content)
                seen += len(page["entries"])
                if keep:
                    kept.append(page["entries"])
                if page["next_after"] is None:
                    return seen
                after = page["next_after"]

        bare()
        endpoint()  # warm both: the first pass pays for cold caches and imports
        common.log("timing")
        t_bare = best_of(2, bare, n)
        t_json = best_of(2, bare_with_json, n)
        t_api = best_of(2, endpoint, n)

        common.log("checking every entry the endpoint returned")
        endpoint(keep=True)
        prev, expected_seq = bytes(32).hex(), 0
        for entries in kept:
            for e in entries:
                raw = e["canonical"].encode()
                body = orjson.loads(raw)
                ok = (
                    e["seq"] == expected_seq == body["seq"]
                    and body["prev"] == prev
                    and (e["time"], e["type"]) == (body["time"], body["type"])
                    and hashlib.sha256(raw).hexdigest() == e["entry_sha256"]
                    and hashlib.sha256(b"\x00" + raw).hexdigest() == e["leaf_hash"]
                )
                if not ok:
                    failed = True
                    print(f"entry {expected_seq}: the endpoint's answer does not check out")
                    break
                prev, expected_seq = e["entry_sha256"], expected_seq + 1
            if failed:
                break
        failed = failed or expected_seq != n

        def row(label: str, seconds: float) -> list[str]:
            return [label, f"{n:,}", f"{seconds:.2f}", f"{common.rate(n, seconds):,.0f}"]

        print(f"feed_read: {n:,} entries, pages of {PAGE:,}, PostgreSQL, best of 2 runs")
        print(
            common.table(
                ["", "entries", "seconds", "entries/s"],
                [
                    row("bare SQL (baseline)", t_bare),
                    row("bare SQL + the view's JSON, no Django", t_json),
                    row("GET /api/v1/ledger/entries (test Client)", t_api),
                ],
            )
        )
        rate = common.rate(n, t_api)
        print(f"\nratio endpoint / bare SQL:               {t_bare / t_api:.2f}")
        print(f"ratio endpoint / bare SQL + view's JSON: {t_json / t_api:.2f}")
        print(
            f"checked {expected_seq:,} entries (hashes, chain, seq): {'FAILED' if failed else 'ok'}"
        )
        print(
            f"feed rate {rate:,.0f} entries/s "
            f"(target >= {TARGET:,}: {'met' if rate >= TARGET else 'NOT met'})"
        )
    finally:
        common.close_django_connections()
        common.drop_database(server, name)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
