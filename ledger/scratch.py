"""Scratch copies of the live PostgreSQL database, for the tamper drill (``ledger/drill.py``).

A scratch copy is a database of its own on the live database's server: created empty, migrated
with this code's migrations, then filled with every table's rows, read from the live database in
one snapshot (``COPY ... TO STDOUT`` / ``FROM STDIN`` through psycopg), its sequences set past the
copied ids. Not ``CREATE DATABASE ... TEMPLATE <live>``: PostgreSQL refuses a template anyone is
connected to, and the live database always has its web and Celery workers. Copies of the copy
are made with ``TEMPLATE``: nothing but this code ever connects to a scratch database.

The live database is only read: in one ``REPEATABLE READ, READ ONLY`` transaction when the caller
has none open, or in the caller's own (a test's). Scratch databases are dropped ``WITH (FORCE)``.

Django code (the verifier, the signer) runs against a scratch database inside ``using``, which
points the *current thread's* default connection at it. Run that in a thread of its own
(``in_thread``): the caller's connection, and any transaction it has open, stay on the live
database.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.utils import load_backend
from psycopg import errors, sql

from . import triggers

T = TypeVar("T")

# Rows no copy needs: each scratch database has the migrations it was built with.
_NOT_COPIED = frozenset({"django_migrations"})


class ScratchError(Exception):
    """A scratch copy could not be made (the message says why); the live database is as it was."""


def _params(dbname: str) -> dict[str, Any]:
    """psycopg connection arguments for ``dbname`` on the live database's server."""
    params = connection.get_connection_params()
    for django_only in ("cursor_factory", "context"):
        params.pop(django_only, None)
    params["dbname"] = dbname
    return params


def connect(dbname: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    return psycopg.connect(**_params(dbname), autocommit=autocommit)


class Server:
    """Creates, copies and drops scratch databases, and remembers each one it made, so that
    ``drop_all`` leaves none behind whatever failed."""

    def __init__(self) -> None:
        if connection.vendor != "postgresql":
            raise ScratchError("scratch copies need PostgreSQL")
        self.live: str = connection.settings_dict["NAME"]
        token = secrets.token_hex(4)
        # PostgreSQL cuts names at 63 bytes: keep the token and the suffixes whole.
        self.prefix = f"{self.live[:36]}_drill_{token}"
        self.made: list[str] = []

    def _admin(self) -> psycopg.Connection[Any]:
        # CREATE and DROP DATABASE run outside any transaction, from a connection to another
        # database: the live one, which they do not touch.
        return connect(self.live, autocommit=True)

    def name(self, suffix: str) -> str:
        return f"{self.prefix}_{suffix}"

    def create(self, name: str, *, template: str | None = None) -> str:
        assert name.startswith(self.prefix) and name != self.live
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        with self._admin() as admin:
            for attempt in range(20):
                try:
                    admin.execute(statement)
                    break
                except errors.ObjectInUse:
                    # The template's last connection (ours, just closed) can take a moment to
                    # go away on the server side.
                    if attempt == 19:
                        raise
                    time.sleep(0.1)
                except errors.InsufficientPrivilege as exc:
                    raise ScratchError(
                        f"cannot create a scratch database: {exc} (the drill's database user "
                        "needs CREATEDB)"
                    ) from None
        self.made.append(name)
        return name

    def drop(self, name: str) -> None:
        assert name in self.made
        with self._admin() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        self.made.remove(name)

    def drop_all(self) -> None:
        for name in list(reversed(self.made)):
            self.drop(name)

    def remaining(self) -> list[str]:
        """Databases on the server named like this run's scratch copies."""
        with self._admin() as admin:
            rows = admin.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [self.prefix]
            ).fetchall()
        return [r[0] for r in rows]


@contextlib.contextmanager
def using(dbname: str) -> Iterator[None]:
    """This thread's default Django connection on ``dbname`` (closed at the end)."""
    if dbname == connections.settings[DEFAULT_DB_ALIAS]["NAME"]:
        raise ScratchError("refusing to attack the live database")
    settings_dict = {**connections.settings[DEFAULT_DB_ALIAS], "NAME": dbname}
    backend = load_backend(settings_dict["ENGINE"])
    wrapper = backend.DatabaseWrapper(settings_dict, DEFAULT_DB_ALIAS)
    connections[DEFAULT_DB_ALIAS] = wrapper
    try:
        yield
    finally:
        wrapper.close()
        del connections[DEFAULT_DB_ALIAS]


def in_thread(work: Callable[[], T], *, cancel: threading.Event | None = None) -> T:
    """``work()`` in a thread of its own (its own Django connections); its result or its
    exception. Interrupted while waiting (Ctrl-C), it sets ``cancel`` for ``work`` to stop at
    its next check, and waits for that, so nothing it creates outlives the caller's cleanup."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="ledger-scratch")
    thread.start()
    try:
        thread.join()
    except BaseException:
        if cancel is not None:
            cancel.set()
        thread.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    result: T = outcome["result"]
    return result


def migrate(name: str) -> None:
    """This code's migrations on the empty database ``name``."""

    def run() -> None:
        with using(name):
            call_command("migrate", interactive=False, verbosity=0)

    in_thread(run)


def _tables(cursor: Any) -> dict[str, list[str]]:
    """Ordinary tables of the current schema and their columns (generated ones excluded)."""
    rows = cursor.execute(
        "SELECT c.relname, a.attname FROM pg_class c "
        "JOIN pg_attribute a ON a.attrelid = c.oid "
        "WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace "
        "AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' "
        "ORDER BY c.relname, a.attnum"
    ).fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return tables


def _migrations(cursor: Any) -> set[tuple[str, str]]:
    return {(app, name) for app, name in cursor.execute("SELECT app, name FROM django_migrations")}


@contextlib.contextmanager
def _live_snapshot() -> Iterator[Any]:
    """A raw psycopg cursor on the live database, in one snapshot."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        connection.ensure_connection()
        raw = connection.connection.cursor()
        try:
            if outermost:
                raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield raw
        finally:
            raw.close()


def copy_live_into(name: str) -> list[str]:
    """Every row of every live table into the migrated database ``name``; returns the live
    tables that are not in it (not copied). Refuses when the two databases were not built by
    the same migrations."""
    with _live_snapshot() as live, connect(name) as target, target.cursor() as out:
        missing = sorted(_migrations(live) ^ _migrations(out))
        if missing:
            raise ScratchError(
                "the live database and this code's migrations differ (run `manage.py migrate` "
                f"first): {', '.join(f'{app}.{m}' for app, m in missing[:5])}"
            )
        source, target_tables = _tables(live), _tables(out)
        copied = [t for t in sorted(source) if t in target_tables and t not in _NOT_COPIED]
        for table in copied:
            if source[table] != target_tables[table]:
                raise ScratchError(f"table {table} has other columns in the live database")
        lifted = [t for t in triggers.APPEND_ONLY_TABLES if t in copied]
        for table in lifted:
            out.execute(
                sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(sql.Identifier(table))
            )
        # Rows the migrations made (content types, the ledger's head row...) give way to the
        # live ones. Foreign keys are DEFERRABLE INITIALLY DEFERRED: checked at the commit.
        out.execute(
            sql.SQL("TRUNCATE {} CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in copied)
            )
        )
        for table in copied:
            columns = sql.SQL(", ").join(sql.Identifier(c) for c in source[table])
            with (
                live.copy(
                    sql.SQL("COPY {} ({}) TO STDOUT (FORMAT BINARY)").format(
                        sql.Identifier(table), columns
                    )
                ) as read,
                out.copy(
                    sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                        sql.Identifier(table), columns
                    )
                ) as write,
            ):
                for block in read:
                    write.write(block)
        for table in lifted:
            for trigger in ("append_only", "no_truncate"):
                out.execute(
                    sql.SQL("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}").format(
                        sql.Identifier(table), sql.Identifier(f"{table}_{trigger}")
                    )
                )
        _fix_sequences(out)
        target.commit()
    return sorted(t for t in source if t not in target_tables)


def _fix_sequences(cursor: Any) -> None:
    """Each id sequence past the largest id copied, so that new rows get new ids."""
    rows = cursor.execute(
        "SELECT c.relname, a.attname, pg_get_serial_sequence(quote_ident(c.relname), a.attname) "
        "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
        "WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace "
        "AND a.attnum > 0 AND NOT a.attisdropped "
        "AND pg_get_serial_sequence(quote_ident(c.relname), a.attname) IS NOT NULL"
    ).fetchall()
    for table, column, sequence in rows:
        cursor.execute(
            sql.SQL("SELECT setval(%s, COALESCE(max({}), 0) + 1, false) FROM {}").format(
                sql.Identifier(column), sql.Identifier(table)
            ),
            [sequence],
        )
