"""``bin/demo``'s processes, as the test of its supervision and bench/soak.py find them: it runs
in a session of its own (``start_new_session``), and everything it starts stays in that
session, workers that outlived their parent included."""

from __future__ import annotations

import os


def session_processes(sid: int) -> dict[int, tuple[int, str]]:
    """The live processes of session ``sid``: pid -> (parent pid, command line)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # proc(5): after the ")" ending the command name, state, ppid, pgrp, session.
        if int(fields[3]) == sid and fields[0] != "Z":
            out[int(pid)] = (int(fields[1]), cmdline)
    return out
