"""The export bundle: one file an auditor takes away (``manage.py ledger_export``).

An uncompressed POSIX tar (pax) whose members all sit under ``bluecarbon-export/``::

    export.json             {"format": "bluecarbon-export/v1", "origin", "from", "size", ...}
    verifier-keys           the log's verifier keys, one per line (check them out of band)
    witness-policy          the log's witness policy (C2SP tlog-policy), if it has one
    checkpoints/<size>      every checkpoint of size >= from, as stored (with cosignatures)
    log/checkpoint          the latest checkpoint
    log/tile/...            hash tiles and entry bundles (c2sp.org/tlog-tiles): a tile directory
    auctions/<id>.json      each cleared auction's revealed key and published result
    manifest.sha256         "<hex SHA-256>  <name>" for every other file (``sha256sum -c``)

The tar is written as a stream (``BundleWriter``, tarfile mode ``w|``): nothing but the file
being added is held in memory, whatever the log's size. The manifest comes last; it detects a
damaged or changed file, but it is not signed: what proves the log is the checkpoints'
signatures, which ``verify`` checks against keys you pinned. ``--from SIZE`` bundles hold the
tiles and bundles that changed since the tree of SIZE: verify them with ``--since`` a state
saved at SIZE or later.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from .note import Checkpoint
from .tiledir import ReadEntries, ReadHashes, tile_files

__all__ = [
    "AUCTIONS",
    "CHECKPOINTS",
    "FORMAT",
    "INFO",
    "KEYS",
    "LOG",
    "MANIFEST",
    "TOP",
    "BundleWriter",
    "ExportStream",
    "ExportSummary",
    "parse_manifest",
    "write_export",
]

FORMAT = "bluecarbon-export/v1"
TOP = "bluecarbon-export"
INFO = "export.json"
KEYS = "verifier-keys"
POLICY = "witness-policy"
CHECKPOINTS = "checkpoints"
LOG = "log"
AUCTIONS = "auctions"
MANIFEST = "manifest.sha256"

_LINE = re.compile(r"([0-9a-f]{64})  (\S(?:.*\S)?)")


class BundleWriter:
    """Adds files to a streamed tar and writes the manifest of their hashes on ``close``."""

    def __init__(self, fileobj: IO[bytes], mtime: int | None = None) -> None:
        # Closed by close(), which also writes the manifest.
        self._tar = tarfile.open(  # noqa: SIM115
            fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT
        )
        self._mtime = int(time.time()) if mtime is None else mtime
        self._hashes: dict[str, str] = {}
        self.files = 0
        self.bytes = 0

    def add(self, name: str, data: bytes) -> None:
        if name in self._hashes or name == MANIFEST:
            raise ValueError(f"{name} is already in the bundle")
        self._add(name, data)
        self._hashes[name] = hashlib.sha256(data).hexdigest()

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(f"{TOP}/{name}")
        info.size = len(data)
        info.mtime = self._mtime
        info.mode = 0o644
        self._tar.addfile(info, io.BytesIO(data))
        self.files += 1
        self.bytes += len(data)

    def close(self) -> None:
        manifest = "".join(f"{digest}  {name}\n" for name, digest in self._hashes.items())
        self._add(MANIFEST, manifest.encode())
        self._tar.close()


def parse_manifest(text: str) -> dict[str, str]:
    """``sha256sum`` lines: name -> lowercase hex digest."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"{MANIFEST} line {number} is not '<sha256>  <name>'")
        digest, name = match.groups()
        if name in found:
            raise ValueError(f"{MANIFEST} lists {name} twice")
        found[name] = digest
    return found


@dataclass
class ExportSummary:
    size: int
    from_size: int
    files: int
    bytes: int
    checkpoints: int
    tiles: int
    bundles: int
    auctions: int


def write_export(fileobj: IO[bytes], **kwargs: Any) -> ExportSummary:
    """Stream an export bundle to ``fileobj`` (``ExportStream``'s arguments)."""
    stream = ExportStream(**kwargs)
    for chunk in stream:
        fileobj.write(chunk)
    return stream.summary


class ExportStream:
    """An export bundle of the tree of the ``latest`` checkpoint, as the bytes of a tar, a piece
    at a time (iterate it once; a web response can stream it, memory flat at any size):
    ``checkpoints`` (every one of size >= ``from_size``, in order of size), the tiles and
    bundles the tree has that the tree of ``from_size`` lacks, the auction files, and the
    manifest. The log's contents come through the two callables, a few tiles at a time.
    ``summary`` is complete once the last piece is out."""

    PIECE = 1 << 16  # bytes gathered before a piece is handed out

    def __init__(
        self,
        *,
        latest: str,
        checkpoints: Iterable[str],
        verifier_keys: Sequence[str],
        read_hashes: ReadHashes,
        read_entries: ReadEntries,
        auctions: Iterable[dict[str, Any]] = (),
        from_size: int = 0,
        extra_info: dict[str, Any] | None = None,
        extra_files: dict[str, bytes] | None = None,
    ) -> None:
        self._body = Checkpoint.from_text(latest[: latest.rfind("\n\n") + 1])
        if not 0 <= from_size <= self._body.size:
            raise ValueError(
                f"--from {from_size} is not between 0 and the tree size {self._body.size}"
            )
        self._latest, self._checkpoints, self._keys = latest, checkpoints, verifier_keys
        self._read_hashes, self._read_entries, self._auctions = read_hashes, read_entries, auctions
        self._from, self._info, self._files = from_size, extra_info or {}, extra_files or {}
        self.summary = ExportSummary(self._body.size, from_size, 0, 0, 0, 0, 0, 0)

    def __iter__(self) -> Iterator[bytes]:
        body, summary, from_size = self._body, self.summary, self._from
        buffer = io.BytesIO()
        writer = BundleWriter(buffer)

        def take() -> bytes:
            data = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            return data

        info = {
            "format": FORMAT,
            "origin": body.origin,
            "from": from_size,
            "size": body.size,
            "root": body.to_text().split("\n")[2],
            **self._info,
        }
        writer.add(INFO, json.dumps(info, indent=2, sort_keys=True).encode() + b"\n")
        writer.add(KEYS, "".join(k + "\n" for k in self._keys).encode())
        for name, data in self._files.items():
            writer.add(name, data)
        for note in self._checkpoints:
            size = Checkpoint.from_text(note[: note.rfind("\n\n") + 1]).size
            if size < from_size or size > body.size:
                continue
            writer.add(f"{CHECKPOINTS}/{size}", note.encode())
            summary.checkpoints += 1
            if buffer.tell() >= self.PIECE:
                yield take()
        writer.add(f"{LOG}/checkpoint", self._latest.encode())
        for ref, data in tile_files(from_size, body.size, self._read_hashes, self._read_entries):
            writer.add(f"{LOG}/{ref.path}", data)
            if isinstance(ref.level, int):
                summary.tiles += 1
            else:
                summary.bundles += 1
            if buffer.tell() >= self.PIECE:
                yield take()
        for auction in self._auctions:
            writer.add(f"{AUCTIONS}/{auction['auction']}.json", json.dumps(auction).encode())
            summary.auctions += 1
            if buffer.tell() >= self.PIECE:
                yield take()
        writer.close()
        summary.files, summary.bytes = writer.files, writer.bytes
        yield take()
