"""Writing a tile directory (c2sp.org/tlog-tiles as files), incrementally and atomically.

A tile directory is the log as a static site: ``checkpoint``, ``tile/<L>/<N>[.p/<W>]`` and the
entry bundles (``tiles``), served by any web server or copied with any file tool. Writing one
is the same whoever holds the log (the registry's ``manage.py ledger_export_tiles`` from its
database, tests and benchmarks from memory), so it is here, reading hashes and entries through
two callables.

Every file is written to a temporary name in its directory, flushed to disk and renamed over
its place, so a reader sees the old file or the new one, never a part. The checkpoint is
written last: a reader that sees a checkpoint finds every tile it needs. Partial tiles are
removed only after the checkpoint that made their full tile available (tlog-tiles §Partial
Tiles: a log MAY delete a partial tile once the full one is served).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .note import Checkpoint, NoteError
from .tiles import (
    ENTRIES,
    ENTRIES_U32,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileRef,
    bundle_paths,
    changed_tiles,
    encode_bundle,
)

__all__ = [
    "ExportStats",
    "TileDirError",
    "dir_checkpoint",
    "export_tiles",
    "tile_files",
    "write_atomic",
]

# read_hashes(level, start, end): the hashes at positions [start, end) of tile level ``level``
# (RFC 9162 level 8 * level), concatenated. read_entries(start, end): entries start..end-1.
ReadHashes = Callable[[int, int, int], bytes]
ReadEntries = Callable[[int, int], Sequence[bytes]]

# Tiles read per call of read_hashes / read_entries: few calls, bounded memory.
_BATCH_TILES = 16


class TileDirError(Exception):
    """The directory holds something the export must not build on (a larger or other tree)."""


@dataclass
class ExportStats:
    old_size: int = 0
    new_size: int = 0
    tiles: int = 0
    bundles: int = 0
    u32_bundles: int = 0
    bytes: int = 0
    removed_partials: int = 0


def write_atomic(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename
    (atomic on POSIX); with ``sync``, flushed to disk first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dir_checkpoint(root: Path) -> tuple[str, Checkpoint] | None:
    """The checkpoint a tile directory holds (its note and parsed body), or None if none."""
    path = root / "checkpoint"
    if not path.exists():
        return None
    note = path.read_text(encoding="utf-8")
    split = note.rfind("\n\n")
    try:
        return note, Checkpoint.from_text(note[: split + 1] if split >= 0 else note)
    except NoteError as exc:
        raise TileDirError(f"{path} is not a checkpoint: {exc}") from None


def export_tiles(
    root: Path,
    *,
    checkpoint: str,
    read_hashes: ReadHashes,
    read_entries: ReadEntries,
    extra: Mapping[str, bytes] | None = None,
    sync: bool = True,
) -> ExportStats:
    """Bring the tile directory ``root`` to the tree of the signed ``checkpoint``: write the
    hash tiles and entry bundles that tree has and the directory's current tree does not, the
    ``extra`` files (e.g. ``verifier-keys``), then the checkpoint. Refuses a checkpoint smaller
    than the directory's, or of the same size with another root (a rollback or a fork is not
    something to mirror)."""
    split = checkpoint.rfind("\n\n")
    body = Checkpoint.from_text(checkpoint[: split + 1])
    current = dir_checkpoint(root)
    old_size = 0
    if current is not None:
        _, held = current
        if held.origin != body.origin:
            raise TileDirError(f"{root} holds the log {held.origin!r}, not {body.origin!r}")
        if held.size > body.size:
            raise TileDirError(
                f"{root} holds a tree of {held.size} entries, larger than the checkpoint's "
                f"{body.size}: refusing to roll the mirror back"
            )
        if held.size == body.size and held.root != body.root:
            raise TileDirError(f"{root} holds another tree of size {held.size} (a fork)")
        old_size = held.size
    stats = ExportStats(old_size=old_size, new_size=body.size)
    if current is not None and current[0] == checkpoint and not extra:
        return stats
    root.mkdir(parents=True, exist_ok=True)
    touched: set[Path] = set()
    superseded: list[TileRef] = []

    def put(ref: TileRef, data: bytes) -> None:
        path = root / ref.path
        write_atomic(path, data, sync=sync)
        touched.add(path.parent)
        stats.bytes += len(data)
        if ref.full:
            superseded.append(ref)

    for ref, data in tile_files(old_size, body.size, read_hashes, read_entries):
        put(ref, data)
        if ref.level in (ENTRIES, ENTRIES_U32):
            stats.bundles += 1
            stats.u32_bundles += ref.level == ENTRIES_U32
            if ref.full:  # the other kind's partials go too
                other = ENTRIES if ref.level == ENTRIES_U32 else ENTRIES_U32
                superseded.append(TileRef(other, ref.index))
        else:
            stats.tiles += 1

    for name, data in (extra or {}).items():
        if (root / name).exists() and (root / name).read_bytes() == data:
            continue
        write_atomic(root / name, data, sync=sync)
        touched.add(root)
    if sync:
        for directory in sorted(touched):
            _sync_dir(directory)
    write_atomic(root / "checkpoint", checkpoint.encode("utf-8"), sync=sync)
    if sync:
        _sync_dir(root)
    for ref in superseded:
        partials = root / ref.partial_dir
        if partials.is_dir():
            shutil.rmtree(partials)
            stats.removed_partials += 1
    return stats


def tile_files(
    old_size: int, new_size: int, read_hashes: ReadHashes, read_entries: ReadEntries
) -> Iterator[tuple[TileRef, bytes]]:
    """The hash tiles, then the entry bundles, that the tree of ``new_size`` has and the tree
    of ``old_size`` does not have at that width, with their bytes. Reads in batches of a few
    tiles, so memory stays flat."""
    refs = list(changed_tiles(old_size, new_size))
    for start in range(0, len(refs), _BATCH_TILES):
        batch = refs[start : start + _BATCH_TILES]
        for level in sorted({int(r.level) for r in batch}):
            group = [r for r in batch if r.level == level]
            first = group[0].index * TILE_WIDTH
            last = group[-1].index * TILE_WIDTH + group[-1].width
            hashes = read_hashes(level, first, last)
            if len(hashes) != 32 * (last - first):
                raise TileDirError(
                    f"level {level * TILE_HEIGHT} hashes {first}..{last - 1}: got "
                    f"{len(hashes) // 32}, expected {last - first}"
                )
            for ref in group:
                a = (ref.index * TILE_WIDTH - first) * 32
                yield ref, hashes[a : a + ref.width * 32]

    bundles = list(bundle_paths(old_size, new_size))
    for start in range(0, len(bundles), _BATCH_TILES):
        batch = bundles[start : start + _BATCH_TILES]
        first = batch[0].index * TILE_WIDTH
        entries = read_entries(first, batch[-1].index * TILE_WIDTH + batch[-1].width)
        for ref in batch:
            a = ref.index * TILE_WIDTH - first
            chunk = entries[a : a + ref.width]
            if len(chunk) != ref.width:
                raise TileDirError(
                    f"entry bundle {ref.index}: got {len(chunk)} entries, expected {ref.width}"
                )
            kind, data = encode_bundle(chunk)
            yield TileRef(kind, ref.index, ref.width), data
