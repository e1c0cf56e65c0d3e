"""Shared plumbing for the benchmark scripts: the PostgreSQL server from ``DATABASE_URL``, a
scratch database per run, Django set up against it, and a small table printer.

Nothing here is timed; every script measures its own baseline in the same run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

_POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}


def server_url() -> str:
    """``DATABASE_URL``, which must name a PostgreSQL server. Exits (status 2) otherwise: the
    benchmarks measure locking, COPY and server-side cursors, which SQLite does not have."""
    url = os.environ.get("DATABASE_URL", "")
    scheme = urlsplit(url).scheme if url else ""
    if scheme not in _POSTGRES_SCHEMES:
        what = f"DATABASE_URL={url!r}" if url else "DATABASE_URL is not set (SQLite default)"
        sys.stderr.write(
            f"refusing to run: {what}.\n"
            "These benchmarks need PostgreSQL, e.g.\n"
            "  DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres "
            f".venv/bin/python bench/{Path(sys.argv[0]).name}\n"
            "(the database named in the URL is only used to create and drop the benchmark's "
            "own database).\n"
        )
        sys.exit(2)
    return url


def with_database(url: str, name: str) -> str:
    """The same server URL, naming database ``name``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def libpq_url(url: str) -> str:
    """libpq accepts postgres:// and postgresql:// but not dj-database-url's pgsql://."""
    parts = urlsplit(url)
    scheme = "postgresql" if parts.scheme == "pgsql" else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def _admin_connect(url: str):
    import psycopg

    return psycopg.connect(libpq_url(with_database(url, "postgres")), autocommit=True)


def database_exists(url: str, name: str) -> bool:
    with _admin_connect(url) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


def create_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url``; return its URL."""
    from psycopg import sql

    with _admin_connect(url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    # A new database: what a signer signed over an earlier one of that name does not apply.
    with contextlib.suppress(FileNotFoundError):
        os.remove(signer_state_path(name))
    return with_database(url, name)


def drop_database(url: str, name: str) -> None:
    from psycopg import sql

    with _admin_connect(url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def signer_state_path(name: str) -> str:
    """The checkpoint signer's state for the benchmark database ``name``: one per database,
    since the signer refuses a database that does not extend what it signed (a state kept in
    the shared var/ directory from an earlier benchmark's database would be refused)."""
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"bluecarbon-bench-signer-{name}.json")


def django_setup(db_url: str) -> None:
    """Point settings at ``db_url`` (before they load) and set Django up."""
    os.environ["DATABASE_URL"] = db_url
    # Children (workers, the verifier's process) inherit it.
    os.environ["LEDGER_SIGNER_STATE_FILE"] = signer_state_path(database_name(db_url))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bluecarbon.settings")
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":  # settings chose something else after all
        sys.stderr.write(f"refusing to run on {connection.vendor}: PostgreSQL only\n")
        sys.exit(2)


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def close_django_connections() -> None:
    from django.db import connections

    connections.close_all()


def on_terminal() -> bool:
    return sys.stderr.isatty()


def bar(total: int | None, desc: str, unit: str = " it"):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not on_terminal(),
        file=sys.stderr,
        mininterval=0.5,
        leave=False,
    )


def log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 else 0.0


def rss_high_water_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    with open("/proc/self/status") as fh:
        for text in fh:
            if text.startswith("VmHWM:"):
                return int(text.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def isolate_queues(queue: str) -> None:
    """This run's Celery queues, every kind of work's (bluecarbon/queues.py) under ``queue``,
    set in the environment before Django is set up, for this process and the worker it starts:
    nothing else on the broker reads them."""
    from bluecarbon import queues

    os.environ.update(queues.isolated(queue))


def start_worker(dsn: str, queue: str, log_path: str):
    """A Celery worker process (its default concurrency) on ``CELERY_BROKER_URL``, consuming
    every kind of work's queue under ``queue`` (``isolate_queues``), against database ``dsn``.
    Stop it with ``stop_processes``."""
    import subprocess

    from bluecarbon import queues

    names = queues.isolated(queue)
    env = dict(os.environ, DATABASE_URL=dsn, PYTHONUNBUFFERED="1", **names)
    log = open(log_path, "ab")  # noqa: SIM115 (the worker's lifetime)
    argv = f"-m celery -A bluecarbon worker -Q {','.join(names.values())} --loglevel WARNING"
    argv += " --without-gossip"
    argv += f" --without-mingle --without-heartbeat -n {queue}@%h"
    return subprocess.Popen(
        [sys.executable, *argv.split()],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_processes(procs) -> None:
    """SIGTERM each process group, then SIGKILL what is still there after 20 s."""
    import signal
    import subprocess

    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def cpu_seconds_by_session(sessions: dict[str, int], users: dict[str, str] | None = None):
    """CPU seconds (user + system) used so far by every process of each session id (a process
    started with ``start_new_session`` and its children), and of each system user's processes
    (the database server's, say), read from /proc. Linux only; {} elsewhere. The difference of
    two readings is what a phase cost each part."""
    import pwd

    if not os.path.isdir("/proc/self"):
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    by_sid = {sid: name for name, sid in sessions.items()}
    uids = {pwd.getpwnam(u).pw_uid: name for name, u in (users or {}).items()}
    out = dict.fromkeys([*sessions, *(users or {})], 0.0)
    from tests.demo import proc_stats

    for pid, fields in proc_stats():
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        # utime and stime are fields[11] and fields[12], the session fields[3] (proc(5)).
        seconds = (int(fields[11]) + int(fields[12])) / tick
        name = by_sid.get(int(fields[3])) or uids.get(uid)
        if name is not None:
            out[name] += seconds
    return out
