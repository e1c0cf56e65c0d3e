"""``bin/demo`` keeps its Celery workers up (issue 14, item 4): a worker killed outright (as a
crash or the kernel's OOM killer would) is started again and ``bin/demo`` says so, the new
worker is heard from on each of its queues, the web server answers throughout, and the killed
worker leaves nothing behind (its embedded beat, orphaned, would go on sending every periodic
task beside the new worker's beat)."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.demo import session_processes
from tests.server import free_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.worker,
    # bin/demo runs on the embedded defaults (SQLite, the file-system broker) whatever the
    # suite's database: it runs in the suite's SQLite pass, and not a second time, alike, in
    # the PostgreSQL one.
    pytest.mark.skipif(
        connection.vendor != "sqlite",
        reason="bin/demo runs on the embedded defaults: tested in the SQLite pass",
    ),
]

# Settings a caller's shell may hold that would take bin/demo off its embedded defaults.
NOT_THE_DEMOS = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "SQLITE_PATH",
    "REDIS_CACHE_URL",
    "BLUECARBON_ENV",
    "WORKER_QUEUES",
)
RESTARTED = re.compile(
    r"bin/demo: the Celery worker exited \(status 137; registry: [a-z,]+\); starting it again"
)
HEARTBEAT_AGE = re.compile(
    r'^bluecarbon_worker_heartbeat_age_seconds\{queue="([^"]+)",worker="([^"]+)"\} (\S+)$', re.M
)


class Demo:
    """``bin/demo`` in a session of its own, on free ports, with its own var directory."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.port = free_port()
        witness_port = free_port()
        while witness_port == self.port:
            witness_port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in NOT_THE_DEMOS}
        env.update(
            BLUECARBON_VAR_DIR=str(var_dir),
            PORT=str(self.port),
            WITNESS_PORT=str(witness_port),
            PYTHONUNBUFFERED="1",
            # Beat's heartbeat to each queue every second (15 by default), so that a restarted
            # worker is heard from within seconds.
            WORKER_HEARTBEAT_INTERVAL="1",
        )
        var_dir.mkdir(parents=True, exist_ok=True)
        self.out = var_dir / "demo.out"
        with self.out.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(ROOT / "bin" / "demo")],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def worker_log(self) -> str:
        path = self.var_dir / "worker.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return f"bin/demo:\n{self.output()[-3000:]}\nworker.log:\n{self.worker_log()[-3000:]}"

    def get(self, path: str) -> tuple[int, str]:
        """An answer from the web server (no answer at all fails the test)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            conn.close()

    def healthy(self) -> bool:
        """/healthz passes: among its checks, a worker heard from on every queue."""
        try:
            return self.get("/healthz")[0] == 200
        except (OSError, http.client.HTTPException):
            return False

    def processes(self) -> dict[int, tuple[int, str]]:
        return session_processes(self.proc.pid)

    def workers(self, name: str) -> dict[int, str]:
        """The main process of the Celery worker ``name``, the child of bin/demo's loop that
        supervises it (not its pool or beat processes, nor one of those left orphaned):
        pid -> command line."""
        procs = self.processes()
        return {
            pid: cmd
            for pid, (ppid, cmd) in procs.items()
            if "celery" in cmd
            and f"-n {name}@" in cmd
            and ppid in procs
            and "celery" not in procs[ppid][1]
        }

    def heartbeats(self) -> tuple[float, dict[tuple[str, str], float]]:
        """When /metrics was asked (a time no later than its answer's), and the age of each
        (queue, worker)'s last heartbeat it reported."""
        asked = time.time()
        status, body = self.get("/metrics")
        assert status == 200, body[:500]
        return asked, {(q, w): float(age) for q, w, age in HEARTBEAT_AGE.findall(body)}

    def wait(
        self, condition: Callable[[], Any], timeout: float, what: str | Callable[[], str]
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                raise AssertionError(f"bin/demo exited ({self.proc.returncode})\n{self.logs()}")
            if time.monotonic() > deadline:
                said = what if isinstance(what, str) else what()
                raise AssertionError(f"timed out after {timeout:.0f} s: {said}\n{self.logs()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """TERM to bin/demo's process group (its traps stop what it started), then KILL to
        whatever of its session is left after 20 s."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    demo = Demo(tmp_path / "var")
    try:
        demo.wait(demo.healthy, 300, "bin/demo healthy (a worker heard from on every queue)")
        yield demo
    finally:
        demo.stop()


def test_a_killed_worker_is_started_again_and_heard_from_while_the_web_server_answers(
    demo: Demo,
):
    (killed, command), *others = demo.workers("registry").items()
    assert not others, others
    queues = command.split(" -Q ", 1)[1].split()[0].split(",")
    assert "--beat" in command  # the worker that runs beat, the harder one to bring back
    # Its pool processes and its embedded beat.
    children = {pid for pid, (ppid, _) in demo.processes().items() if ppid == killed}
    assert len(children) >= 3, demo.processes()
    (outbound, _), *others = demo.workers("outbound").items()
    assert not others, others

    killed_at = time.time()
    os.kill(killed, signal.SIGKILL)

    # bin/demo says so, on its output and in the workers' log.
    demo.wait(lambda: RESTARTED.search(demo.output()), 30, "bin/demo's restart line")
    assert RESTARTED.search(demo.worker_log()), demo.logs()
    # A new worker, with the same queues and beat; the other worker untouched.
    demo.wait(lambda: set(demo.workers("registry")) - {killed}, 30, "a new registry worker")
    (restarted, again), *others = demo.workers("registry").items()
    assert not others, others
    assert restarted != killed
    assert again == command
    assert list(demo.workers("outbound")) == [outbound]

    def heard_from_since_the_kill() -> bool:
        asked, ages = demo.heartbeats()
        return all(
            any(
                q == queue and w.startswith("registry@") and asked - age > killed_at
                for (q, w), age in ages.items()
            )
            for queue in queues
        )

    # Every one of its queues heard from again (beat sent the heartbeat, the new worker ran
    # it): what /healthz and the operators' banner go by. Each check asks the web server.
    demo.wait(heard_from_since_the_kill, 60, f"a heartbeat from registry@ on {queues}")

    # Nothing of the killed worker lives on: an orphaned beat would send every periodic task
    # a second time, and one more with each restart.
    demo.wait(
        lambda: not children & set(demo.processes()),
        10,
        lambda: (
            f"the killed worker's processes {sorted(children)} to be gone: "
            f"{sorted(children & set(demo.processes()))} are left"
        ),
    )
    for path in ("/healthz", "/"):
        status, body = demo.get(path)
        assert status == 200, (path, body[:500])
