"""A real Celery worker process for tests, on the configured broker and the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def worker_env(queue: str) -> dict[str, str]:
    env = dict(os.environ)
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["SQLITE_PATH"] = str(db["NAME"])
    else:
        # The same server, the test database pytest-django created.
        url = settings.DATABASE_URL
        env["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + db["NAME"]
    env["CELERY_QUEUE"] = queue
    # The application's entry key is the test process's, wherever a test puts the signing key.
    env["LEDGER_ENTRY_KEY_FILE"] = str(settings.LEDGER_ENTRY_KEY_FILE)
    env["WEBHOOK_RETRY_BASE_SECONDS"] = "0.2"  # retries in tests within a second
    env["WEBHOOK_ALLOW_LOOPBACK"] = "1"  # the tests' receivers listen on 127.0.0.1
    env["AUCTION_STALL_SECONDS"] = "2"  # the sweep re-kicks a stalled auction within seconds
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Worker:
    def __init__(
        self, log_dir: Path, concurrency: int = 2, env: dict[str, str] | None = None
    ) -> None:
        self.queue = f"test-{uuid.uuid4().hex[:8]}"
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
                self.queue,
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
                **worker_env(self.queue),
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
def own_worker(log_dir: Path, env: dict[str, str]) -> Iterator[Worker]:
    """A worker of a test's own, with ``env`` on top of the usual, on its own queue: tasks the
    test's writes enqueue go to it (and not to the session's worker) until the block ends."""
    from bluecarbon.celery import app as celery_app

    worker = Worker(log_dir, env=env)
    queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = worker.queue
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        celery_app.conf.task_default_queue = queue
