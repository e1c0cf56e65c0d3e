"""``bin/demo``'s processes, as the test of its supervision and bench/soak.py find them: it runs
in a session of its own (``start_new_session``), and everything it starts stays in that
session, workers that outlived their parent included."""

from __future__ import annotations

import os
from collections.abc import Iterator


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """Each live process's pid and its /proc/<pid>/stat fields after the ")" that ends the
    command name (proc(5): state, ppid, pgrp, session, ... utime is [11], stime [12]). Linux."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                yield int(pid), fh.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue


def session_processes(sid: int) -> dict[int, tuple[int, str]]:
    """The live processes of session ``sid``: pid -> (parent pid, command line)."""
    out = {}
    for pid, fields in proc_stats():
        if int(fields[3]) != sid or fields[0] == "Z":
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[pid] = (int(fields[1]), cmdline)
    return out
