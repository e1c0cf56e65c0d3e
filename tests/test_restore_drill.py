"""``bin/restore-drill``: a point-in-time recovery on a throwaway PostgreSQL cluster ends with a
ledger that verifies, ends exactly at the target and raises the signer's rollback alarm; a
restore that goes wrong fails the drill; nothing it started is left running or on disk."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    # The drill makes its own cluster and needs none of the suite's database; it runs in the
    # suite's PostgreSQL pass (.ci/run), where PostgreSQL's server binaries are installed,
    # and not a second time in the SQLite pass.
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="runs in the PostgreSQL pass, which has PostgreSQL's server binaries",
    ),
]


def drill(*args: str) -> subprocess.CompletedProcess[str]:
    # Its scratch directory goes to the system's temporary directory, which the cluster's OS
    # user (when the suite runs as root) can enter; pytest's tmp_path is closed to it.
    return subprocess.run(
        [sys.executable, str(REPO / "bin" / "restore_drill.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def assert_nothing_left(output: str) -> None:
    scratch = re.search(r"scratch directory (\S+)", output)
    assert scratch and not Path(scratch[1]).exists()
    ports = {int(p) for p in re.findall(r"on 127\.0\.0\.1:(\d+)", output)}
    assert ports
    assert not [port for port in ports if listening(port)]


def test_a_restore_to_a_named_point_verifies_and_ends_exactly_there() -> None:
    done = drill()
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    target = re.search(r"restore point 'restore-drill' at LSN \S+: (\d+) entries", out)
    after = re.search(r"(\d+) entries after the target, signed at (\d+)", out)
    assert target and after and int(after[1]) > 0
    restored = re.search(r"restore 1 .*: (\d+) entries", out)
    assert restored and restored[1] == target[1]
    assert "the ledger ends exactly at the target" in out
    # The signer's state is ahead of the restored ledger: the rollback alarm, then the
    # operator's procedure, then a verification that passes.
    assert (
        f"the ledger has {target[1]} entries, but the checkpoint signer signed {after[2]}: "
        "entries were removed from the end (a rollback)"
    ) in out
    assert re.search(rf"verify     exit 0 .*: OK: {target[1]} entries", out)
    assert re.search(rf"restore 2 .*: {after[2]} entries", out)
    assert re.search(rf"with the signer's state as it was: exit 0 .*: OK: {after[2]} entries", out)
    assert "OK: restore drill passed" in out
    assert_nothing_left(out)


def test_it_fails_when_the_restored_database_does_not_verify() -> None:
    done = drill("--break", "table")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED: ledger_verify FAILED on the database restored to the target" in done.stdout
    assert "holding of account" in done.stdout
    assert "restore drill passed" not in done.stdout
    assert_nothing_left(done.stdout)


def test_it_fails_when_the_archive_does_not_reach_the_target() -> None:
    done = drill("--break", "wal")
    assert done.returncode == 1, done.stdout + done.stderr
    # Where recovery gives up is a race: before ``pg_ctl -w start`` returns (it did not start),
    # or after the server reached a consistent state and accepted connections (hot standby),
    # while the drill waits for the promotion (it stopped during recovery). Both fail the drill.
    assert re.search(
        r"FAILED: restore-target: PostgreSQL (did not start|stopped during recovery)", done.stdout
    ), done.stdout
    assert "recovery ended before configured recovery target was reached" in done.stdout
    assert "restore drill passed" not in done.stdout
    assert_nothing_left(done.stdout)
