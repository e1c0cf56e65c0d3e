"""Feed read: the whole ledger through ``GET /api/v1/ledger/entries`` in pages of 1,000.

Builds N entries with ``build_ledger.build`` (PostgreSQL), then in the same run measures
(a) a bare SQL read of the same rows (``SELECT seq, body, type ... ORDER BY seq`` in pages of
1,000 through Django's connection) and (b) the endpoint through Django's test Client (the full
request path: URL routing, DRF view, throttle, JSON writing; no socket). Prints entries/s for
each and the ratio. Target: at least 20,000 entries/s through the endpoint.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/feed_read.py [--entries N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import _common as common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="20,000 entries")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.entries
    server = common.server_url()
    name = f"bench_bluecarbon_feed_{os.getpid()}"
    dsn = common.create_database(server, name)
    try:
        os.environ["DEBUG"] = "0"
        os.environ["API_ANON_RATE"] = "100000000/min"  # measure the path, not the throttle
        import build_ledger

        common.log(f"building {n:,} entries")
        build_ledger.build(n, dsn, progress=common.on_terminal())
        from django.db import connection
        from django.test import Client

        def bare() -> float:
            started, after, seen = time.perf_counter(), -1, 0
            with connection.cursor() as cursor:
                while True:
                    cursor.execute(
                        "SELECT seq, body, type FROM ledger_ledgerentry WHERE seq > %s "
                        "ORDER BY seq LIMIT 1000",
                        [after],
                    )
                    rows = cursor.fetchall()
                    if not rows:
                        break
                    seen += len(rows)
                    after = rows[-1][0]
            assert seen == n
            return time.perf_counter() - started

        def endpoint() -> float:
            client = Client()
            started, after, seen = time.perf_counter(), -1, 0
            while True:
                r = client.get("/api/v1/ledger/entries", {"after": after, "limit": 1000})
                assert r.status_code == 200, r.content[:200]
                page = json.loads(r.content)
                seen += len(page["entries"])
                if page["next_after"] is None:
                    break
                after = page["next_after"]
            assert seen == n, seen
            return time.perf_counter() - started

        bare()  # warm the cache for both
        t_bare, t_api = bare(), endpoint()
        t_api = min(t_api, endpoint())
        print(
            common.table(
                ["", "entries", "seconds", "entries/s"],
                [
                    ["bare SQL pages of 1,000", f"{n:,}", f"{t_bare:.2f}", f"{n / t_bare:,.0f}"],
                    ["GET /api/v1/ledger/entries", f"{n:,}", f"{t_api:.2f}", f"{n / t_api:,.0f}"],
                ],
            )
        )
        rate = n / t_api
        print(f"\nratio endpoint / bare SQL: {t_bare / t_api:.2f}")
        print(
            f"feed rate {rate:,.0f} entries/s (target >= 20,000: "
            f"{'met' if rate >= 20_000 else 'NOT met'})"
        )
    finally:
        common.close_django_connections()
        common.drop_database(server, name)


if __name__ == "__main__":
    main()
