"""``bin/restore-drill``: a point-in-time recovery drill on a throwaway PostgreSQL cluster.

It never touches the PostgreSQL server the registry runs on, nor its keys and state: it creates
its own cluster with ``initdb`` in a temporary directory, on a free port, with WAL archiving on,
and its own ``BLUECARBON_VAR_DIR`` (keys, the checkpoint signer's state). Then, as an operator
would after losing the database server:

1. migrates the schema into it and writes ledger activity (``seed_demo``, transfers through
   ``bulk_import``, checkpoints through ``ledger_checkpoint``, whose notes it keeps as an
   auditor would);
2. takes a base backup with ``pg_basebackup`` and checks it with ``pg_verifybackup``;
3. writes more activity, marks the recovery target with ``pg_create_restore_point``, and writes
   activity after it that must not survive a restore to that target, signed by the signer;
4. restores the base backup into a new data directory with the archived WAL up to the target
   (``recovery_target_name``) and checks that the ledger ends exactly there; shows that
   ``ledger_verify`` and the checkpoint signer both refuse it (the signer signed a longer
   ledger: a rollback); re-initialises the signer from the latest checkpoint the restored
   ledger holds, as docs/operations.md tells the operator to, and ``ledger_verify`` passes;
5. restores the same base backup with all the archived WAL (the latest point): the ledger is
   whole and ``ledger_verify`` passes against the signer's state as it was.

Everything it started is stopped and its directory removed at the end, failure or not
(``--keep`` keeps the directory for a look). Exit status 0 only if every step did what it
should. ``--break`` makes the restore go wrong on purpose, to see the drill fail (its test
does). Needs PostgreSQL's server binaries (``initdb``, ``pg_ctl``, ``pg_basebackup``, ...):
found with ``--pg-bin``, ``$PG_BIN``, ``pg_config --bindir`` or ``/usr/lib/postgresql/*/bin``.
PostgreSQL refuses to run as root: run as root, the drill runs the cluster as ``--os-user``
(``postgres``) through ``runuser`` and gives that user the temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESTORE_POINT = "restore-drill"
DATABASE = "bluecarbon"
# Transfers of 1 kg each through bulk_import: (phase, how many). Small, so that the drill is
# about the restore and not the load.
TRANSFERS_CHECKPOINTED = 300  # after the base backup, then a checkpoint
TRANSFERS_UNSIGNED = 40  # then, before the target, not yet checkpointed
TRANSFERS_AFTER_TARGET = 120  # after the target, checkpointed: must not survive
# Only these of the caller's environment reach the app's commands: the registry's own settings
# (DATABASE_URL, key files, CELERY_BROKER_URL, BLUECARBON_ENV, ...) must not.
PASSED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


class DrillError(Exception):
    """A step did not do what it should: the drill fails."""


@dataclass
class Head:
    size: int
    last_hash: str

    def __str__(self) -> str:
        return f"{self.size} entries, head {self.last_hash[:16]}…"


@dataclass
class Cluster:
    name: str
    data: Path
    port: int
    log: Path
    started: bool = False


@dataclass
class History:
    """What the primary went through, to compare the restores with."""

    base: Path  # the base backup
    target: Head  # the ledger at the restore point
    target_segment: str  # the WAL segment holding the restore point
    signed_before: int  # the last checkpoint before the target
    signed_after: int  # the checkpoint after it (the signer's state says this)
    final: Head  # the ledger when the primary was lost


@dataclass
class Drill:
    root: Path
    bindir: Path
    os_user: str | None  # run PostgreSQL as this user (we are root), else as ourselves
    verbose: bool
    break_: str | None
    clusters: list[Cluster] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    # -- paths --------------------------------------------------------------------------

    @property
    def archive(self) -> Path:
        return self.root / "wal-archive"

    @property
    def sockets(self) -> Path:
        return self.root / "sockets"

    @property
    def var(self) -> Path:
        return self.root / "var"

    @property
    def notes(self) -> Path:
        return self.root / "auditor"  # checkpoint notes kept outside the database

    # -- running things -----------------------------------------------------------------

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)

    def run(
        self,
        cmd: Sequence[str | Path],
        *,
        as_postgres: bool = False,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(c) for c in cmd]
        if as_postgres and self.os_user:
            argv = _as_user(self.os_user, argv)
        if self.verbose:
            print(f"    $ {shlex.join(argv)}", file=sys.stderr, flush=True)
        if env is None:
            # The caller's PGHOST, PGPORT, PGSERVICE, PGOPTIONS... would point the PostgreSQL
            # tools elsewhere, or change the sessions: only the drill's own flags count.
            env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        done = subprocess.run(  # noqa: S603 (our own argv, no shell)
            argv,
            cwd=self.root if as_postgres else REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise DrillError(
                f"{shlex.join(argv)} exited {done.returncode}:\n{_tail(done.stdout + done.stderr)}"
            )
        return done

    def pg(self, tool: str) -> Path:
        return self.bindir / tool

    def sql(self, cluster: Cluster, query: str, *, database: str = DATABASE) -> str:
        done = self.run(
            [
                self.pg("psql"),
                *("-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", "-d", database),
                *("-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", query),
            ]
        )
        return done.stdout.strip()

    def app_env(self, cluster: Cluster, **extra: str) -> dict[str, str]:
        env = {k: os.environ[k] for k in PASSED_ENVIRONMENT if k in os.environ}
        env.update(
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{cluster.port}/{DATABASE}",
            BLUECARBON_VAR_DIR=str(self.var),  # keys, signer state, the file-system broker
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def manage(
        self, cluster: Cluster, *args: str, check: bool = True, signer_state: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``manage.py`` against ``cluster``, with the drill's keys and (by default) the
        checkpoint signer's state beside them, or ``signer_state``."""
        python = REPO / ".venv" / "bin" / "python"
        extra = {"LEDGER_SIGNER_STATE_FILE": str(signer_state)} if signer_state else {}
        return self.run(
            [python if python.exists() else sys.executable, "manage.py", *args],
            env=self.app_env(cluster, **extra),
            check=check,
        )

    # -- clusters -----------------------------------------------------------------------

    def own(self, *paths: Path) -> None:
        """Directories the cluster's OS user writes (all of them, when we are not root)."""
        for path in paths:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.os_user:
                entry = pwd.getpwnam(self.os_user)
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def configure(self, cluster: Cluster, settings: dict[str, str]) -> None:
        # postgresql.auto.conf is read last: what is set here wins over postgresql.conf, which a
        # restored data directory brings from the primary (its port, its archive_command).
        lines = [f"{name} = {_quote(value)}" for name, value in settings.items()]
        with open(cluster.data / "postgresql.auto.conf", "a") as conf:
            conf.write("\n# bin/restore-drill\n" + "\n".join(lines) + "\n")

    def start(self, cluster: Cluster) -> float:
        started = time.monotonic()
        cluster.started = True  # from here on, cleanup stops it (pg_ctl start may half-work)
        done = self.run(
            [self.pg("pg_ctl"), "-D", cluster.data, "-l", cluster.log, "-w", "-t", "120", "start"],
            as_postgres=True,
            check=False,
        )
        if done.returncode != 0:
            raise DrillError(
                f"{cluster.name}: PostgreSQL did not start; its log ends:\n{_log_tail(cluster)}"
            )
        return time.monotonic() - started

    def stop(self, cluster: Cluster, mode: str = "fast") -> None:
        if not cluster.started or not (cluster.data / "postmaster.pid").exists():
            cluster.started = False
            return
        done = self.run(
            [self.pg("pg_ctl"), "-D", cluster.data, "-m", mode, "-w", "-t", "60", "stop"],
            as_postgres=True,
            check=False,
        )
        if done.returncode != 0 and mode != "immediate":
            self.stop(cluster, "immediate")
            return
        cluster.started = False

    def new_cluster(self, name: str) -> Cluster:
        cluster = Cluster(name, self.root / name, _free_port(), self.root / "logs" / f"{name}.log")
        self.clusters.append(cluster)
        return cluster

    def head(self, cluster: Cluster) -> Head:
        row = self.sql(
            cluster, "SELECT size, encode(last_hash, 'hex') FROM ledger_ledgerhead WHERE id = 1"
        )
        size, last_hash = row.split("|") if row else ("0", "")
        return Head(int(size), last_hash)

    def checkpoint(self, cluster: Cluster, signer_state: Path | None = None) -> int:
        """Sign a checkpoint now, and keep its note where an auditor would: outside."""
        note = self.manage(cluster, "ledger_checkpoint", signer_state=signer_state).stdout
        size = int(note.splitlines()[1])  # C2SP checkpoint: origin, size, root hash
        self.notes.mkdir(exist_ok=True)
        (self.notes / f"checkpoint-{size}.txt").write_text(note)
        return size

    def transfers(self, cluster: Cluster, count: int, name: str) -> None:
        """``count`` transfers of 1 kg between two demo accounts, through ``bulk_import``."""
        sender, batch = self.sql(
            cluster,
            "SELECT h.account_id, h.batch_id FROM ledger_holding h JOIN ledger_account a "
            "ON a.id = h.account_id WHERE a.kind = 'holding' ORDER BY h.tradable DESC, h.id "
            "LIMIT 1",
        ).split("|")
        recipient = self.sql(
            cluster,
            f"SELECT id FROM ledger_account WHERE kind = 'holding' AND id <> {int(sender)} "
            "ORDER BY id LIMIT 1",
        )
        line = (
            f'{{"op": "transfer", "batch": {batch}, "sender": {sender}, '
            f'"recipient": {recipient}, "quantity": "0.001"}}\n'
        )
        path = self.root / f"{name}.jsonl"
        path.write_text(line * count)
        self.manage(cluster, "bulk_import", str(path), "--org", "bluecarbon-ops", "--no-progress")

    def archived_up_to(self, cluster: Cluster) -> str:
        """Close the current WAL segment and wait until the archiver has copied it."""
        segment = self.sql(cluster, "SELECT pg_walfile_name(pg_switch_wal())")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            archived, failed = self.sql(
                cluster,
                "SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver",
            ).split("|")
            if archived >= segment:
                return segment
            if int(failed):
                raise DrillError(f"archive_command failed; the log ends:\n{_log_tail(cluster)}")
            time.sleep(0.2)
        raise DrillError(f"WAL segment {segment} was not archived within 60 s")

    def wait_promoted(self, cluster: Cluster) -> None:
        # pg_ctl -w returns once connections are accepted, which (hot_standby) is during
        # recovery already: the target is reached when the server has left recovery.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if self.sql(cluster, "SELECT pg_is_in_recovery()", database="postgres") == "f":
                    return
            except DrillError:
                if not (cluster.data / "postmaster.pid").exists():  # recovery gave up
                    raise DrillError(
                        f"{cluster.name}: PostgreSQL stopped during recovery; its log ends:\n"
                        + _log_tail(cluster)
                    ) from None
            time.sleep(0.2)
        raise DrillError(f"{cluster.name}: still in recovery after 300 s:\n{_log_tail(cluster)}")

    def restore(self, name: str, base: Path, target: dict[str, str]) -> tuple[Cluster, float]:
        """The base backup copied into a new data directory, recovered from the archive."""
        cluster = self.new_cluster(name)
        started = time.monotonic()
        self.run(["cp", "-a", base, cluster.data], as_postgres=True)
        self.configure(
            cluster,
            {
                "port": str(cluster.port),
                "unix_socket_directories": str(self.sockets),
                # A drill's restore must not write into the archive it restores from.
                "archive_mode": "off",
                "restore_command": f"cp {self.archive}/%f %p",
                **target,
            },
        )
        self.run(["touch", cluster.data / "recovery.signal"], as_postgres=True)
        self.start(cluster)
        self.wait_promoted(cluster)
        return cluster, time.monotonic() - started


def _as_user(user: str, argv: list[str]) -> list[str]:
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *argv]
    return ["su", "-s", "/bin/sh", user, "-c", shlex.join(argv)]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def _log_tail(cluster: Cluster) -> str:
    try:
        return _tail(cluster.log.read_text())
    except OSError:
        return "    (no log)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _mb(n: int) -> str:
    return f"{n / 1_048_576:.1f} MB"


def find_bindir(given: str | None) -> Path:
    candidates: list[Path] = []
    if given:
        candidates.append(Path(given))
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(  # noqa: S603
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            )
            candidates.append(Path(out.stdout.strip()))
    by_version = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    candidates += [Path(p) for p in by_version]
    tools = ("initdb", "pg_ctl", "pg_basebackup", "pg_verifybackup", "psql", "postgres")
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in tools):
            return bindir
    raise DrillError(
        "PostgreSQL's server binaries (" + ", ".join(tools) + ") were not found: give "
        "--pg-bin DIR or PG_BIN (e.g. /usr/lib/postgresql/15/bin)"
    )


def run_drill(drill: Drill) -> None:
    history = primary_history(drill)
    if drill.break_ == "wal":
        (drill.archive / history.target_segment).unlink()
        drill.say(
            f"BREAK      removed {history.target_segment} (holds the restore point) "
            "from the archive"
        )
    restore_to_target(drill, history)
    restore_to_end(drill, history)


def primary_history(drill: Drill) -> History:
    """A primary with WAL archiving, a base backup of it, activity before and after a named
    restore point; then the primary is stopped, as if lost."""
    say = drill.say
    version = drill.run([drill.pg("postgres"), "--version"]).stdout.strip()
    who = (
        f"as OS user {drill.os_user} (this process is root, and PostgreSQL refuses to run as root)"
        if drill.os_user
        else f"as {pwd.getpwuid(os.geteuid()).pw_name}"
    )
    say(f"restore drill: {version} from {drill.bindir}, clusters run {who}")
    say(f"  scratch directory {drill.root} (removed at the end)")
    drill.own(drill.root, drill.archive, drill.sockets, drill.root / "logs")
    if (
        drill.os_user
        and drill.run(["test", "-w", drill.root], as_postgres=True, check=False).returncode
    ):
        raise DrillError(
            f"OS user {drill.os_user} cannot reach {drill.root} (a directory above it is closed "
            "to it): give --workdir a directory it can enter, such as /tmp"
        )
    drill.var.mkdir()

    # -- the primary ------------------------------------------------------------------------
    primary = drill.new_cluster("primary")
    t = time.monotonic()
    drill.run(
        [
            drill.pg("initdb"),
            *("-D", primary.data, "-U", "postgres", "--auth=trust", "-E", "UTF8"),
            *("--locale=C", "--no-instructions"),
        ],
        as_postgres=True,
    )
    drill.configure(
        primary,
        {
            "listen_addresses": "127.0.0.1",
            "port": str(primary.port),
            "unix_socket_directories": str(drill.sockets),
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": f"test ! -f {drill.archive}/%f && cp %p {drill.archive}/%f",
        },
    )
    drill.start(primary)
    drill.sql(primary, f"CREATE DATABASE {DATABASE}", database="postgres")
    say(
        f"primary    initdb and start {time.monotonic() - t:.1f}s on 127.0.0.1:{primary.port} "
        "(wal_level=replica, archive_mode=on, archive_command cp into the scratch archive)"
    )
    t = time.monotonic()
    drill.manage(primary, "migrate", "--no-input", "-v0")
    migrated = time.monotonic() - t
    t = time.monotonic()
    drill.manage(primary, "seed_demo")
    seeded = drill.head(primary)
    say(f"schema     manage.py migrate {migrated:.1f}s")
    say(f"activity   seed_demo {time.monotonic() - t:.1f}s: {seeded}, checkpoint signed")

    # -- the base backup --------------------------------------------------------------------
    base = drill.root / "base-backup"
    t = time.monotonic()
    drill.run(
        [
            drill.pg("pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-D", base),
            *("--checkpoint=fast", "--wal-method=stream", "--no-password"),
        ],
        as_postgres=True,
    )
    backed_up = time.monotonic() - t
    t = time.monotonic()
    drill.run([drill.pg("pg_verifybackup"), base], as_postgres=True)
    say(
        f"backup     pg_basebackup {backed_up:.1f}s, {_mb(_size(base))} at {seeded.size} "
        f"entries; pg_verifybackup {time.monotonic() - t:.1f}s: OK"
    )

    # -- activity up to the target, the target, activity after it ---------------------------
    drill.transfers(primary, TRANSFERS_CHECKPOINTED, "before-target-1")
    signed_before = drill.checkpoint(primary)
    drill.transfers(primary, TRANSFERS_UNSIGNED, "before-target-2")
    point = drill.sql(primary, f"SELECT pg_create_restore_point('{RESTORE_POINT}')")
    target_segment = drill.sql(primary, f"SELECT pg_walfile_name('{point}')")
    target = drill.head(primary)
    say(
        f"target     restore point '{RESTORE_POINT}' at LSN {point}: {target} "
        f"(checkpoint at {signed_before}, the {target.size - signed_before} entries after it "
        "not yet signed)"
    )
    drill.transfers(primary, TRANSFERS_AFTER_TARGET, "after-target")
    signed_after = drill.checkpoint(primary)
    final = drill.head(primary)
    last_segment = drill.archived_up_to(primary)
    segments = sorted(p for p in drill.archive.iterdir() if re.fullmatch(r"[0-9A-F]{24}", p.name))
    say(
        f"after      {final.size - target.size} entries after the target, signed at {signed_after} "
        f"(the signer's state now says {signed_after}); {len(segments)} WAL segments "
        f"archived up to {last_segment}, {_mb(_size(drill.archive))}"
    )
    drill.stop(primary)
    say("primary    stopped: what follows uses only the base backup and the WAL archive")
    return History(base, target, target_segment, signed_before, signed_after, final)


def restore_to_target(drill: Drill, history: History) -> None:
    """The base backup and the archive up to the restore point: the ledger must end exactly
    there, the rollback alarm must fire, and after the operator's procedure it verifies."""
    say = drill.say
    base, target, final = history.base, history.target, history.final
    signed_before, signed_after = history.signed_before, history.signed_after
    restored, took = drill.restore(
        "restore-target",
        base,
        {"recovery_target_name": RESTORE_POINT, "recovery_target_action": "promote"},
    )
    log = restored.log.read_text()
    if f'recovery stopping at restore point "{RESTORE_POINT}"' not in log:
        raise DrillError(f"recovery did not stop at the restore point:\n{_log_tail(restored)}")
    got = drill.head(restored)
    count, stop = drill.sql(
        restored, "SELECT count(*), coalesce(max(seq) + 1, 0) FROM ledger_ledgerentry"
    ).split("|")
    latest = int(drill.sql(restored, "SELECT coalesce(max(size), 0) FROM ledger_checkpoint"))
    say(
        f"restore 1  to '{RESTORE_POINT}' on 127.0.0.1:{restored.port} in {took:.1f}s (copy, "
        f"WAL replay, promotion): {got}; latest stored checkpoint {latest}"
    )
    if (got.size, got.last_hash) != (target.size, target.last_hash):
        raise DrillError(f"the restored ledger is {got}, the target was {target}")
    if (int(count), int(stop)) != (target.size, target.size):
        raise DrillError(f"the restored ledger holds {count} entries up to {stop}: not the target")
    if latest != signed_before:
        raise DrillError(f"the latest stored checkpoint is {latest}, not {signed_before}")
    say(
        f"           the ledger ends exactly at the target; the {final.size - target.size} "
        "entries after it and their checkpoint are absent"
    )

    # The signer's state (beside its key, outside the database) says it signed a longer
    # ledger: ledger_verify must say so. (The signer itself is not run with that state here:
    # that is the last step below, because of what it does to the restored database.)
    refused = drill.manage(restored, "ledger_verify", "--no-progress", check=False)
    alarm = (refused.stdout + refused.stderr).strip()
    if refused.returncode == 0 or "(a rollback)" not in alarm:
        raise DrillError(f"ledger_verify did not report the rollback against the signer:\n{alarm}")
    say(f"verify     with the signer's state: exit {refused.returncode} (expected): {alarm}")

    # The operator's procedure (docs/operations.md): the old state kept as evidence, a new one
    # from the latest checkpoint the restored ledger holds, in the copy kept outside the
    # database (an auditor's, the witnesses').
    state = drill.var / "keys" / "signer-state.after-restore.json"
    note = drill.notes / f"checkpoint-{signed_before}.txt"
    done = drill.manage(
        restored,
        "ledger_signer_init",
        "--checkpoint",
        str(note),
        signer_state=state,
    )
    say(f"signer     ledger_signer_init --checkpoint {note.name}: {done.stdout.strip()}")
    if drill.break_ == "table":
        drill.sql(
            restored,
            "UPDATE ledger_holding SET tradable = tradable + 1000 "
            "WHERE id = (SELECT min(id) FROM ledger_holding WHERE tradable > 0)",
        )
        say("BREAK      added 1 t to a holding in the restored database")
    t = time.monotonic()
    verified = drill.manage(
        restored,
        "ledger_verify",
        "--no-progress",
        "--state-file",
        str(drill.root / "verify-state-1.json"),
        check=False,
        signer_state=state,
    )
    output = (verified.stdout + verified.stderr).strip()
    if verified.returncode != 0:
        raise DrillError(f"ledger_verify FAILED on the database restored to the target:\n{output}")
    say(
        f"verify     exit 0 in {time.monotonic() - t:.1f}s: "
        + output.replace("\n", "\n           ")
    )
    resigned = drill.checkpoint(restored, signer_state=state)
    say(f"signer     signs again: checkpoint at {resigned}, a prefix of the {final.size} it signed")

    # What a worker started before that procedure would have done: the signer, with the state
    # that signed the longer ledger, refuses, and first stores again the checkpoint it signed
    # (it cannot tell a restore from an insider deleting checkpoints). The checkpoint table is
    # append-only: this restored database now fails verification for good; restore again.
    refused = drill.manage(restored, "ledger_checkpoint", check=False)
    alarm = (refused.stdout + refused.stderr).strip().splitlines()[-1]
    if refused.returncode == 0 or "rollback" not in alarm:
        raise DrillError(f"the signer signed the rolled-back ledger:\n{alarm}")
    say(f"mistake    the signer run with its old state: exit {refused.returncode}: {alarm}")
    spoiled = drill.manage(
        restored, "ledger_verify", "--no-progress", check=False, signer_state=state
    )
    output = (spoiled.stdout + spoiled.stderr).strip()
    if spoiled.returncode == 0 or f"checkpoint at size {signed_after}" not in output:
        raise DrillError(f"expected the re-stored checkpoint {signed_after} to fail:\n{output}")
    say(f"           and now ledger_verify: exit {spoiled.returncode}: {output} (restore again)")
    drill.stop(restored)


def restore_to_end(drill: Drill, history: History) -> None:
    """The base backup and all the archive: the whole ledger, verified against the signer's
    state as it was (the restore an operator makes after losing the server)."""
    say = drill.say
    final, signed_after = history.final, history.signed_after
    restored, took = drill.restore("restore-latest", history.base, {})
    got = drill.head(restored)
    latest = int(drill.sql(restored, "SELECT coalesce(max(size), 0) FROM ledger_checkpoint"))
    say(
        f"restore 2  to the end of the archive on 127.0.0.1:{restored.port} in {took:.1f}s: "
        f"{got}; latest checkpoint {latest}"
    )
    if (got.size, got.last_hash) != (final.size, final.last_hash) or latest != signed_after:
        raise DrillError(f"the restored ledger is {got}, the primary's was {final}")
    t = time.monotonic()
    verified = drill.manage(
        restored,
        "ledger_verify",
        "--no-progress",
        "--state-file",
        str(drill.root / "verify-state-2.json"),
        check=False,
    )
    output = (verified.stdout + verified.stderr).strip()
    if verified.returncode != 0:
        raise DrillError(f"ledger_verify FAILED on the database restored to the end:\n{output}")
    say(
        f"verify     with the signer's state as it was: exit 0 in {time.monotonic() - t:.1f}s: "
        + output.replace("\n", "\n           ")
    )
    drill.stop(restored)


def cleanup(drill: Drill, keep: bool) -> None:
    for cluster in drill.clusters:
        with contextlib.suppress(Exception):
            drill.stop(cluster, "immediate")
    if keep:
        print(f"kept {drill.root}", flush=True)
    else:
        shutil.rmtree(drill.root, ignore_errors=True)


@contextlib.contextmanager
def _terminated_as_exit() -> Iterator[None]:
    """SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so the clusters are stopped."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bin/restore-drill", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--pg-bin", help="PostgreSQL's bin directory (initdb, pg_ctl, ...)")
    parser.add_argument(
        "--os-user",
        default="postgres",
        help="when run as root, run PostgreSQL as this user (default: %(default)s)",
    )
    parser.add_argument("--workdir", help="where to make the scratch directory (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each command run")
    parser.add_argument(
        "--break",
        dest="break_",
        choices=("wal", "table"),
        help="make the restore go wrong, to see the drill fail: 'wal' removes the archived WAL "
        "segment holding the target, 'table' changes a holding in the restored database",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    os_user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(args.os_user)
        except KeyError:
            print(
                f"FAILED: running as root, and there is no OS user {args.os_user!r} to run "
                "PostgreSQL as (it refuses root): give --os-user",
                file=sys.stderr,
            )
            return 1
        os_user = args.os_user
    try:
        bindir = find_bindir(args.pg_bin)
    except DrillError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="bluecarbon-restore-drill-", dir=args.workdir))
    drill = Drill(root, bindir, os_user, args.verbose, args.break_)
    try:
        with _terminated_as_exit():
            run_drill(drill)
    except (DrillError, subprocess.TimeoutExpired) as exc:
        print(f"FAILED: {exc}", flush=True)
        return 1
    finally:
        cleanup(drill, args.keep)
    print(f"OK: restore drill passed in {time.monotonic() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
