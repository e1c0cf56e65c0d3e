"""Test helpers: a real witness process on a free loopback port, and a log in memory.

    witness = start_witness(tmp_path, "witness.example/w1", {origin: log_verifier_key})
    lines = witness_add_checkpoint(witness.url, 0, [], signed_checkpoint)
    verify_cosignature(witness.verifier_key, signed_checkpoint, lines[0])
    witness.stop()

The process is ``python -m bluecarbon_audit witness serve --port 0`` with the running
interpreter, so it is the installed package that answers, over HTTP, exactly as in production.
Its key, state and log live in ``tmpdir``; starting again with the same ``tmpdir`` and ``name``
reuses them (a restarted witness).

``MemoryLog`` builds a ledger in memory (entries made with ``entry.encode_entry``, hash-chained,
checkpoints signed with a note key) and writes it as a tile directory with ``tiledir``, the code
the registry's export runs: tests and benchmarks make logs to verify without any server.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .bundle import ExportSummary, write_export
from .cosignature import Cosigner
from .entry import ZERO_HASH, encode_entry, entry_hash
from .merkle import Frontier, leaf_hash, perfect_root
from .note import Checkpoint, Signer, checkpoint_sign
from .tiledir import ExportStats, export_tiles
from .tiles import TILE_WIDTH
from .witness import read_key_file, write_key_file

__all__ = ["MemoryLog", "WitnessProcess", "start_witness"]

_LISTENING = re.compile(r"listening on (http://\S+)")


@dataclass
class WitnessProcess:
    """A running witness: its URL (submission prefix), verifier key and files."""

    url: str
    name: str
    verifier_key: str
    key_file: Path
    state_file: Path
    log_file: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process.stdout:
            self.process.stdout.close()

    def log(self) -> str:
        """What the witness wrote to stderr (its request log)."""
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> WitnessProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _read_line(stream: IO[bytes], deadline: float) -> str:
    """One line from the child's stdout, or "" at the deadline or at end of file."""
    line = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            if not selector.select(max(0.0, deadline - time.monotonic())):
                return ""
            chunk = os.read(stream.fileno(), 1)
            if not chunk:
                return ""
            line += chunk
    return line.decode("utf-8", "replace")


def start_witness(
    tmpdir: str | os.PathLike[str],
    name: str,
    logs: Mapping[str, str | Sequence[str]],
    *,
    prefix: str = "",
    timeout: float = 20.0,
) -> WitnessProcess:
    """Start a witness named ``name`` that cosigns the given logs (origin -> verifier key or
    keys), on 127.0.0.1 and a port the system picks; wait until it listens."""
    directory = Path(tmpdir)
    directory.mkdir(parents=True, exist_ok=True)
    key_file = directory / f"{_slug(name)}.key"
    if not key_file.exists():
        write_key_file(key_file, Cosigner.generate(name))
    verifier_key = read_key_file(key_file).verifier().to_string()
    state_file = directory / f"{_slug(name)}.state.json"
    log_file = directory / f"{_slug(name)}.log"
    command = [
        sys.executable,
        "-m",
        "bluecarbon_audit",
        "witness",
        "serve",
        "--key",
        str(key_file),
        "--state",
        str(state_file),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--prefix",
        prefix,
    ]
    for origin, keys in logs.items():
        for key in [keys] if isinstance(keys, str) else keys:
            command += ["--log", f"{origin}={key}"]
    with open(log_file, "ab") as stderr:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
    assert process.stdout is not None
    line = _read_line(process.stdout, time.monotonic() + timeout)
    match = _LISTENING.search(line)
    if not match:
        process.kill()
        process.wait()
        process.stdout.close()
        raise RuntimeError(
            f"witness did not start (first line {line!r}); its log:\n"
            + log_file.read_text(encoding="utf-8", errors="replace")
        )
    return WitnessProcess(
        url=match[1],
        name=name,
        verifier_key=verifier_key,
        key_file=key_file,
        state_file=state_file,
        log_file=log_file,
        process=process,
    )


class MemoryLog:
    """A ledger in memory: append entries, sign checkpoints, write tile directories.

    ``levels[l]`` holds the hashes of tile level ``l`` (RFC 9162 level 8l): leaf hashes at 0,
    and above, the root of each full run of 256 hashes below."""

    def __init__(self, origin: str = "log.example/ledger", signer: Signer | None = None) -> None:
        self.origin = origin
        self.signer = signer or Signer.generate(origin)
        self.entries: list[bytes] = []
        self.levels: list[list[bytes]] = [[]]
        self.prev = ZERO_HASH

    @property
    def verifier_key(self) -> str:
        return self.signer.verifier().to_string()

    def append(
        self,
        type: str,
        data: dict[str, Any],
        *,
        actor: str = "system:test",
        time: str = "2026-11-22T23:08:02.031273Z",
    ) -> bytes:
        body = encode_entry(
            seq=len(self.entries), prev=self.prev, time=time, type=type, actor=actor, data=data
        )
        self.append_bytes(body)
        return body

    def append_bytes(self, body: bytes) -> None:
        """Append exactly these bytes (tests of bad entries make their own)."""
        self.entries.append(body)
        self.prev = entry_hash(body)
        h, level = leaf_hash(body), 0
        while True:
            hashes = self.levels[level]
            hashes.append(h)
            if len(hashes) % TILE_WIDTH:
                break
            h = perfect_root(hashes[-TILE_WIDTH:])
            level += 1
            if len(self.levels) == level:
                self.levels.append([])

    def root(self, size: int | None = None) -> bytes:
        size = len(self.entries) if size is None else size
        frontier = Frontier()
        for leaf in self.levels[0][:size]:
            frontier.push(leaf)
        return frontier.root()

    def checkpoint(self, size: int | None = None, *extra: Signer) -> str:
        size = len(self.entries) if size is None else size
        note = checkpoint_sign(Checkpoint(self.origin, size, self.root(size)), self.signer)
        for signer in extra:  # a rotated key signing too
            note += checkpoint_sign(Checkpoint(self.origin, size, self.root(size)), signer).split(
                "\n\n", 1
            )[1]
        return note

    def read_hashes(self, level: int, start: int, end: int) -> bytes:
        return b"".join(self.levels[level][start:end])

    def read_entries(self, start: int, end: int) -> list[bytes]:
        return self.entries[start:end]

    def write_tiles(
        self, root: str | os.PathLike[str], checkpoint: str | None = None, sync: bool = False
    ) -> ExportStats:
        """Write (or bring up to date) the tile directory ``root`` for ``checkpoint`` (default:
        one signed now over every entry)."""
        return export_tiles(
            Path(root),
            checkpoint=checkpoint or self.checkpoint(),
            read_hashes=self.read_hashes,
            read_entries=self.read_entries,
            sync=sync,
        )

    def write_bundle(
        self,
        path: str | os.PathLike[str],
        checkpoints: Sequence[str] = (),
        *,
        from_size: int = 0,
        auctions: Sequence[dict[str, Any]] = (),
    ) -> ExportSummary:
        """Write an export bundle (``bundle``) of the tree of the last of ``checkpoints``
        (default: one signed now over every entry)."""
        notes = list(checkpoints) or [self.checkpoint()]
        with open(path, "wb") as fh:
            return write_export(
                fh,
                latest=notes[-1],
                checkpoints=notes,
                verifier_keys=[self.verifier_key],
                read_hashes=self.read_hashes,
                read_entries=self.read_entries,
                auctions=auctions,
                from_size=from_size,
            )
