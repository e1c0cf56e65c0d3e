"""The production web server as the README tells operators to start it: one command line, read
from the README, that the test of the server and bench/bid_intake.py both run."""

from __future__ import annotations

import re
import shlex
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_command(port: int, **options: str) -> list[str]:
    """The README's code block that starts with ``python -m bluecarbon.serve`` (Granian), as an
    argv for this Python, on 127.0.0.1:``port``; ``options`` replace the values of its flags
    (``workers="4"`` sets ``--workers 4``), and must name flags the command has."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"^ {4}(python -m bluecarbon\.serve .*?)(?:\n\n|\n[^ ])", text, re.M | re.S)
    assert found, "README.md shows no python -m bluecarbon.serve command"
    argv = shlex.split(found.group(1).replace("\\\n", " "))
    for flag, value in {"host": "127.0.0.1", "port": str(port), **options}.items():
        argv[argv.index(f"--{flag.replace('_', '-')}") + 1] = value
    return [sys.executable, *argv[1:]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
