"""Database triggers that make the ledger's tables append-only.

PostgreSQL: row triggers reject UPDATE and DELETE, a statement trigger rejects TRUNCATE (which
fires no DELETE trigger), and all are ``ENABLE ALWAYS`` so that
``session_replication_role = replica`` does not switch them off. SQLite has no TRUNCATE; its
``DELETE FROM t`` (the truncate optimization) is disabled by the presence of a DELETE trigger.
Only the table owner or a superuser can remove these; the tamper tests do exactly that.

SQLite drops a table's triggers when a migration rebuilds the table (it does so to alter a
column): such a migration must end by reinstalling them (see migration 0004). ``ledger_verify``
fails if they are missing.
"""

from __future__ import annotations

from typing import Any

APPEND_ONLY_TABLES = ("ledger_ledgerentry", "ledger_merklenode", "ledger_checkpoint")

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def install_sql(vendor: str) -> list[str]:
    statements = []
    if vendor == "postgresql":
        statements.append(_PG_FUNCTION)
        for t in APPEND_ONLY_TABLES:
            statements += [
                f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()",
                f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()",
                f"ALTER TABLE {t} ENABLE ALWAYS TRIGGER {t}_append_only",
                f"ALTER TABLE {t} ENABLE ALWAYS TRIGGER {t}_no_truncate",
            ]
    elif vendor == "sqlite":
        for t in APPEND_ONLY_TABLES:
            for op in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER {t}_no_{op.lower()} BEFORE {op} ON {t} BEGIN "
                    f"SELECT RAISE(ABORT, 'append-only: {op} on {t} is not allowed'); END"
                )
    else:
        raise NotImplementedError(f"no append-only triggers for {vendor}")
    return statements


def uninstall_sql(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [
            f"DROP TRIGGER IF EXISTS {t}_{name} ON {t}"
            for t in APPEND_ONLY_TABLES
            for name in ("append_only", "no_truncate")
        ] + ["DROP FUNCTION IF EXISTS ledger_append_only()"]
    return [
        f"DROP TRIGGER IF EXISTS {t}_no_{op} "
        for t in APPEND_ONLY_TABLES
        for op in ("update", "delete")
    ]


def installed(connection: Any) -> bool:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = ANY(%s) AND tgenabled = 'A'",
                [[f"{t}_{n}" for t in APPEND_ONLY_TABLES for n in ("append_only", "no_truncate")]],
            )
            return cursor.fetchone()[0] == 2 * len(APPEND_ONLY_TABLES)
        cursor.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN ("
            + ", ".join(["%s"] * (2 * len(APPEND_ONLY_TABLES)))
            + ")",
            [f"{t}_no_{op}" for t in APPEND_ONLY_TABLES for op in ("update", "delete")],
        )
        return cursor.fetchone()[0] == 2 * len(APPEND_ONLY_TABLES)


def install(connection: Any) -> None:
    with connection.cursor() as cursor:
        for sql in install_sql(connection.vendor):
            cursor.execute(sql)


def uninstall(connection: Any) -> None:
    with connection.cursor() as cursor:
        for sql in uninstall_sql(connection.vendor):
            cursor.execute(sql)
