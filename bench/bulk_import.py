"""Bulk import into PostgreSQL: operations per second through ``ledger.bulk.bulk_apply`` (the
path ``POST /api/v1/bulk`` and ``manage.py bulk_import`` use), in chunks of 1,000, against a
bare COPY of the same number of ledger-entry-shaped rows into a scratch table, same run.
Target (issue): at least 10,000 operations/s.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/bulk_import.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import _common as common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--operations", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="4,000 operations")
    args = parser.parse_args()
    n = 4_000 if args.quick else args.operations
    server = common.server_url()
    name = f"bench_bluecarbon_bulk_{os.getpid()}"
    dsn = common.create_database(server, name)
    try:
        os.environ["DEBUG"] = "0"
        common.django_setup(dsn)
        common.migrate()
        from django.db import connection, transaction

        from ledger.apis.auth import ALL_SCOPES
        from ledger.bulk import bulk_apply
        from tests.factories import World

        with transaction.atomic():
            world = World()
            batch = world.issue(10**14)
        ops = [
            {
                "op": "transfer",
                "batch": batch.pk,
                "sender": world.dev_account.pk,
                "recipient": world.buyer_account.pk,
                "quantity": "0.001",
            }
            for _ in range(n)
        ]
        started = time.perf_counter()
        for i in range(0, n, 1000):
            with transaction.atomic(durable=True):
                bulk_apply(actor=world.dev, scopes=ALL_SCOPES, operations=ops[i : i + 1000])
        t_bulk = time.perf_counter() - started

        from django.test import Client

        from ledger import services

        _, secret = services.apikey_create(
            organization=world.developer.pk, name="bench", scopes=["transfer"]
        )
        client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
        started = time.perf_counter()
        for i in range(0, n, 1000):
            r = client.post(
                "/api/v1/bulk", {"operations": ops[i : i + 1000]}, content_type="application/json"
            )
            assert r.status_code == 201, r.content[:300]
        t_http = time.perf_counter() - started

        body = b'{"actor":"user:1","data":{"batch":1,"from":2,"quantity":1,"to":3},' + (
            b'"prev":"' + b"0" * 64 + b'","seq":0,"time":"2026-11-22T22:07:02.123456Z",'
            b'"type":"credit.transfer","v":1}'
        )
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE scratch_entry (LIKE ledger_ledgerentry INCLUDING ALL)")
        raw = connection.connection
        started = time.perf_counter()
        with raw.cursor() as cur, cur.copy("COPY scratch_entry (seq, body, type) FROM STDIN") as cp:
            for seq in range(n):
                cp.write_row((seq, body, "credit.transfer"))
        raw.commit()
        t_copy = time.perf_counter() - started
        print(
            common.table(
                ["", "rows", "seconds", "per second"],
                [
                    [
                        "bulk_apply, chunks of 1,000",
                        f"{n:,}",
                        f"{t_bulk:.2f}",
                        f"{n / t_bulk:,.0f}",
                    ],
                    [
                        "POST /api/v1/bulk, same chunks",
                        f"{n:,}",
                        f"{t_http:.2f}",
                        f"{n / t_http:,.0f}",
                    ],
                    ["bare COPY of entry rows", f"{n:,}", f"{t_copy:.2f}", f"{n / t_copy:,.0f}"],
                ],
            )
        )
        print(f"\nratio bulk / COPY: {t_copy / t_bulk:.3f}; through HTTP: {t_copy / t_http:.3f}")
        rate = n / t_http
        print(
            f"end-to-end (HTTP) rate {rate:,.0f} operations/s (target >= 10,000: "
            f"{'met' if rate >= 10_000 else 'NOT met'})"
        )
    finally:
        common.close_django_connections()
        common.drop_database(server, name)


if __name__ == "__main__":
    main()
