"""``bin/demo`` keeps its Celery workers up (issue 14, item 4): a worker killed outright (as a
crash or the kernel's OOM killer would) is started again and ``bin/demo`` says so, the new
worker is heard from on each of its queues, the web server answers throughout, and the killed
worker leaves nothing behind (its embedded beat, orphaned, would go on sending every periodic
task beside the new worker's beat). So is a worker that stays alive but consumes nothing (as
one whose pool process was killed once did): its watchdog, reading the heartbeat file the
worker writes, kills it and its process group once it has been silent too long."""

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
NOT_HEARD_FROM = re.compile(
    r"bin/demo: the Celery worker (\w+) has not been heard from in (\d+) s \([a-z,]+\); "
    r"starting it again"
)
HEARTBEAT_AGE = re.compile(
    r'^bluecarbon_worker_heartbeat_age_seconds\{queue="([^"]+)",worker="([^"]+)"\} (\S+)$', re.M
)


class Demo:
    """``bin/demo`` in a session of its own, on free ports, with its own var directory."""

    def __init__(self, var_dir: Path, **settings: str) -> None:
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
        env.update(settings)
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

    def heard_from(self, name: str) -> int:
        """When the worker ``name`` last ran a heartbeat, by the file its watchdog reads
        (seconds since the epoch; 0: never)."""
        path = self.var_dir / "heartbeats" / name
        return int(path.read_text()) if path.exists() else 0

    def heartbeats(self) -> tuple[float, dict[tuple[str, str], float]]:
        """When /metrics was asked (a time no later than its answer's), and the age of each
        (queue, worker)'s last heartbeat it reported."""
        asked = time.time()
        status, body = self.get("/metrics")
        assert status == 200, body[:500]
        return asked, {(q, w): float(age) for q, w, age in HEARTBEAT_AGE.findall(body)}

    def heard_from_on_every_queue_since(self, name: str, queues: list[str], t: float) -> bool:
        """/metrics reports a heartbeat from the worker ``name`` later than ``t`` on each of
        ``queues``: what /healthz and the operators' banner go by."""
        asked, ages = self.heartbeats()
        return all(
            any(
                q == queue and w.startswith(f"{name}@") and asked - age > t
                for (q, w), age in ages.items()
            )
            for queue in queues
        )

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


@contextlib.contextmanager
def healthy_demo(var_dir: Path, **settings: str) -> Iterator[Demo]:
    demo = Demo(var_dir, **settings)
    try:
        demo.wait(demo.healthy, 300, "bin/demo healthy (a worker heard from on every queue)")
        yield demo
    finally:
        demo.stop()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    with healthy_demo(tmp_path / "var") as demo:
        yield demo


# A worker not heard from for this long is killed: the test waits that long for it. Longer than
# a restarted worker takes to start and run its first heartbeat (a few seconds here), with room
# for a loaded machine: the watchdog gives a starting worker this long too.
WATCHDOG_SECONDS = 10


@pytest.fixture
def watched_demo(tmp_path: Path) -> Iterator[Demo]:
    with healthy_demo(tmp_path / "var", DEMO_WATCHDOG_SECONDS=str(WATCHDOG_SECONDS)) as demo:
        yield demo


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

    # Every one of its queues heard from again (beat sent the heartbeat, the new worker ran
    # it): what /healthz and the operators' banner go by. Each check asks the web server.
    demo.wait(
        lambda: demo.heard_from_on_every_queue_since("registry", queues, killed_at),
        60,
        f"a heartbeat from registry@ on {queues}",
    )

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


def test_a_worker_alive_but_not_heard_from_is_killed_with_its_group_and_started_again(
    watched_demo: Demo,
):
    demo = watched_demo
    (stopped, command), *others = demo.workers("registry").items()
    assert not others, others
    queues = command.split(" -Q ", 1)[1].split()[0].split(",")
    (outbound, _), *others = demo.workers("outbound").items()
    assert not others, others
    # Its pool processes and its embedded beat, in its process group.
    children = {pid for pid, (ppid, _) in demo.processes().items() if ppid == stopped}
    assert len(children) >= 3, demo.processes()
    assert all(os.getpgid(pid) == stopped for pid in children)
    # Heard from (by the file bin/demo's watchdog reads, which the worker writes).
    now = int(time.time())
    demo.wait(lambda: demo.heard_from("registry") >= now, 30, "registry heard from")
    said_before = len(NOT_HEARD_FROM.findall(demo.output()))

    # Alive, not consuming anything: what a worker hung on a lost pool process looks like.
    stopped_at = time.time()
    os.kill(stopped, signal.SIGSTOP)

    def web_server_answers() -> None:
        status, body = demo.get("/healthz")
        assert status == 200, body[:500]

    def said() -> list[tuple[str, str]]:
        web_server_answers()
        return NOT_HEARD_FROM.findall(demo.output())[said_before:]

    # bin/demo says so once the worker has been silent longer than the threshold, on its output
    # and in the workers' log, and about that worker only: beat, in its own process, goes on
    # sending the other worker heartbeats, which it runs.
    demo.wait(said, WATCHDOG_SECONDS + 30, "bin/demo's watchdog line")
    ((name, silent),) = said()
    assert name == "registry"
    # Counted from its last heartbeat, a second or so before the stop.
    assert WATCHDOG_SECONDS < int(silent) < time.time() - stopped_at + 5, demo.logs()
    assert NOT_HEARD_FROM.search(demo.worker_log()), demo.logs()

    # The stopped worker is killed with everything in its process group.
    def group_gone() -> bool:
        web_server_answers()
        try:
            os.killpg(stopped, 0)
        except ProcessLookupError:
            return True
        return False

    demo.wait(
        group_gone,
        10,
        lambda: f"the stopped worker's group {stopped} to be gone: {demo.processes()}",
    )
    assert not ({stopped} | children) & set(demo.processes())

    # A new worker, with the same queues and beat, heard from again; the other one untouched.
    def a_new_worker() -> set[int]:
        web_server_answers()
        return set(demo.workers("registry")) - {stopped}

    demo.wait(a_new_worker, 30, "a new registry worker")
    (restarted, again), *others = demo.workers("registry").items()
    assert not others, others
    assert restarted != stopped
    assert again == command
    demo.wait(
        lambda: demo.heard_from_on_every_queue_since("registry", queues, stopped_at),
        60,
        f"a heartbeat from registry@ on {queues}",
    )
    assert demo.heard_from("registry") >= int(stopped_at)
    assert list(demo.workers("outbound")) == [outbound]
    assert not RESTARTED.search(demo.output()), demo.logs()  # the watchdog's line only
    for path in ("/healthz", "/"):
        status, body = demo.get(path)
        assert status == 200, (path, body[:500])
