"""The log as C2SP tlog-tiles, read from the database: what the tile endpoints serve, what
``manage.py ledger_export_tiles`` and ``ledger_export`` write. Reads only.

A hash tile is a run of stored Merkle nodes (``ledger_merklenode``): tile level *l* holds the
nodes of RFC 9162 level 8*l*, so tile (*l*, *n*) of width *w* is the nodes (8*l*, 256*n* ..
256*n* + *w* - 1), level 0 being the leaf hashes. An entry bundle is the entries 256*n* ..
256*n* + *w* - 1 (``ledger_ledgerentry``), encoded by ``bluecarbon_audit.tiles`` (uint16
lengths, or the ``entries-u32`` form for a bundle holding an entry over 65,535 bytes:
docs/ledger-format.md §8). The byte formats, and everything a verifier checks, are the audit
package's: this module only fetches rows.

Stored nodes and entries never change (append-only, enforced by triggers), so a tile or bundle
read here is correct forever once it exists; what exists is bounded by the stored tree
(``TreeHead``), which the checkpoint signer extends before it signs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bluecarbon_audit.tiles import TILE_HEIGHT, TileRef, encode_bundle
from django.conf import settings
from django.db import connection

from .models import Checkpoint
from .witnesses import cosigned_note


def hashes(level: int, start: int, end: int) -> bytes:
    """The stored nodes of RFC 9162 level ``8 * level``, indexes ``start`` .. ``end - 1``,
    concatenated (fewer if the stored tree does not have them all)."""
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT "hash" FROM ledger_merklenode WHERE "level" = %s AND "index" >= %s '
            'AND "index" < %s ORDER BY "index"',
            [TILE_HEIGHT * level, start, end],
        )
        return b"".join(bytes(row[0]) for row in cursor.fetchall())


def entries(start: int, end: int) -> list[bytes]:
    """The entries ``start`` .. ``end - 1`` (fewer if the ledger does not have them all)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT body FROM ledger_ledgerentry WHERE seq >= %s AND seq < %s ORDER BY seq",
            [start, end],
        )
        return [bytes(row[0]) for row in cursor.fetchall()]


def hash_tile(level: int, index: int, width: int) -> bytes | None:
    """Hash tile (``level``, ``index``) of ``width``, or None if the stored tree lacks it."""
    first = index * 256
    data = hashes(level, first, first + width)
    return data if len(data) == 32 * width else None


def bundle_bytes(index: int, width: int) -> tuple[TileRef, bytes] | None:
    """The entry bundle holding entries 256 * ``index`` .. + ``width`` - 1 (which of the two
    forms, ``entries`` or ``entries-u32``) and its bytes; None unless the stored tree covers
    them all, so that a bundle always matches a level-0 tile."""
    if hash_tile(0, index, width) is None:
        return None
    rows = entries(index * 256, index * 256 + width)
    if len(rows) != width:
        return None
    kind, data = encode_bundle(rows)
    return TileRef(kind, index, width), data


def checkpoint_latest() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-size").first()


def checkpoint_note(checkpoint: Checkpoint) -> str:
    """The signed note with the cosignatures the witnesses returned (``witnesses``)."""
    return cosigned_note(checkpoint)


def checkpoints(from_size: int = 0) -> Iterator[Checkpoint]:
    """Every checkpoint of size >= ``from_size``, by size."""
    return Checkpoint.objects.filter(size__gte=from_size).order_by("size").iterator(chunk_size=500)


def witness_policy_text() -> str | None:
    """The witness policy this log publishes (the operator's C2SP tlog-policy file), if any."""
    configured = settings.LEDGER_WITNESS_POLICY_FILE
    if not configured:
        return None
    return Path(configured).read_text(encoding="utf-8")
