"""A real Celery worker process for tests, on the configured broker and the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from bluecarbon import queues

ROOT = Path(__file__).resolve().parent.parent


def routes() -> dict[str, str]:
    """Where this process sends each kind of task now: {environment variable: queue}
    (bluecarbon/queues.py)."""
    from bluecarbon.celery import app

    return {
        variable: str(
            app.conf.task_default_queue if kind == "default" else getattr(settings, variable)
        )
        for kind, (variable, _) in queues.KINDS.items()
    }


def _route(names: dict[str, str]) -> None:
    from bluecarbon.celery import app

    for kind, (variable, _) in queues.KINDS.items():
        if kind == "default":
            app.conf.task_default_queue = names[variable]
        else:
            setattr(settings, variable, names[variable])


@contextmanager
def routed(names: dict[str, str]) -> Iterator[None]:
    """This process sends each kind of task to the queue ``names`` gives it, in the block."""
    before = routes()
    _route(names)
    try:
        yield
    finally:
        _route(before)


def worker_env(queue: str, names: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["SQLITE_PATH"] = str(db["NAME"])
    else:
        # The same server, the test database pytest-django created.
        url = settings.DATABASE_URL
        env["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + db["NAME"]
    # Each kind of work on its own queue under this worker's name (or where ``names`` says).
    env.update(names or queues.isolated(queue))
    # The application's entry key is the test process's, wherever a test puts the signing key.
    env["LEDGER_ENTRY_KEY_FILE"] = str(settings.LEDGER_ENTRY_KEY_FILE)
    env["WEBHOOK_RETRY_BASE_SECONDS"] = "0.2"  # retries in tests within a second
    env["WEBHOOK_ALLOW_LOOPBACK"] = "1"  # the tests' receivers listen on 127.0.0.1
    env["AUCTION_STALL_SECONDS"] = "2"  # the sweep re-kicks a stalled auction within seconds
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Worker:
    """A worker consuming the queues of ``kinds`` (all by default), each its own, named after
    it; the kinds it does not consume go where ``routes`` sends them (tasks it enqueues)."""

    def __init__(
        self,
        log_dir: Path,
        concurrency: int = 2,
        env: dict[str, str] | None = None,
        kinds: Iterable[str] | None = None,
        routes: dict[str, str] | None = None,
    ) -> None:
        self.queue = f"test-{uuid.uuid4().hex[:8]}"
        self.kinds = sorted(kinds or queues.KINDS)
        own = queues.isolated(self.queue)
        self.names = {
            **(routes or own),
            **{queues.KINDS[k][0]: own[queues.KINDS[k][0]] for k in self.kinds},
        }
        self.consumes = [self.names[queues.KINDS[k][0]] for k in self.kinds]
        self.log_path = log_dir / f"worker-{self.queue}.log"
        self.concurrency = concurrency
        self.env = env or {}
        # The checkpoint signer's state (ledger/signer.py), the worker's own: tests reset it
        # whenever they empty the database under it.
        self.signer_state = log_dir / f"signer-state-{self.queue}.json"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # A restart appends to the same log: only what this process writes says it is ready.
        since = len(self.log())
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bluecarbon",
                "worker",
                "-Q",
                ",".join(self.consumes),
                "--concurrency",
                str(self.concurrency),
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{self.queue}@%h",
            ],
            cwd=ROOT,
            env={
                **worker_env(self.queue, self.names),
                "LEDGER_SIGNER_STATE_FILE": str(self.signer_state),
                **self.env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log()[since:][-3000:]}")
            if "ready." in self.log()[since:]:
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker did not become ready: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def own_worker(
    log_dir: Path, env: dict[str, str], kinds: Iterable[str] | None = None, concurrency: int = 2
) -> Iterator[Worker]:
    """A worker of a test's own, with ``env`` on top of the usual, on queues of its own for
    ``kinds`` (every kind by default): the tasks of those kinds the test enqueues go to it (and
    not to the session's worker) until the block ends; the other kinds go where they went."""
    worker = Worker(log_dir, concurrency=concurrency, env=env, kinds=kinds, routes=routes())
    with routed(worker.names):
        worker.start()
        try:
            yield worker
        finally:
            worker.stop()
