"""The export bundle an auditor takes away (``manage.py ledger_export``, and the download on the
auditor pages): the log's tiles and entry bundles, every checkpoint with its cosignatures, the
verifier keys and witness policy, each auction's revealed key and result, and a manifest.

In the auctions app, which builds on the registry (as ``seed_demo``): the archive holds the
ledger and the auctions' revealed keys, and ``ledger`` imports nothing of ``auctions``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bluecarbon_audit import bundle
from django.db import connection, transaction
from django.utils import timezone

from ledger import tiles
from ledger.signing import trusted_verifiers

from .models import Auction


class NothingToExport(Exception):
    """No checkpoint has been issued yet."""


def _auctions() -> Iterator[dict[str, Any]]:
    """Each auction whose key was revealed: the key and the published result (the whole result,
    every bid included, is the ledger's own auction.clear entry at ``result_seq``)."""
    for auction in (
        Auction.objects.filter(private_key__isnull=False).order_by("pk").iterator(chunk_size=100)
    ):
        yield {
            "auction": auction.pk,
            "state": auction.state,
            "private_key": auction.private_key_b64,
            "result_seq": auction.result_seq,
            "result_sha256": auction.result_sha256,
            "result": auction.result,
        }


def export_stream(
    from_size: int = 0, summary: list[bundle.ExportSummary] | None = None
) -> Iterator[bytes]:
    """The bundle's bytes, a piece at a time, all read in one snapshot (the checkpoints, tiles
    and auctions are of the same moment): iterate it to the end, or close it, in the thread
    that started it. Raises ``NothingToExport`` before any byte, and ``ValueError`` for a
    ``from_size`` outside the tree. ``summary``, if given, receives the summary at the end."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        latest = tiles.checkpoint_latest()
        if latest is None:
            raise NothingToExport("no checkpoint has been issued yet: nothing to export")
        if not 0 <= from_size <= latest.size:
            raise ValueError(f"--from must be between 0 and {latest.size}")
        extra_files = {}
        policy = tiles.witness_policy_text()
        if policy is not None:
            extra_files[bundle.POLICY] = policy.encode()
        stream = bundle.ExportStream(
            latest=tiles.checkpoint_note(latest),
            checkpoints=(tiles.checkpoint_note(c) for c in tiles.checkpoints(from_size)),
            verifier_keys=[v.to_string() for v in trusted_verifiers()],
            read_hashes=tiles.hashes,
            read_entries=tiles.entries,
            auctions=_auctions(),
            from_size=from_size,
            extra_info={"exported_at": timezone.now().isoformat()},
            extra_files=extra_files,
        )
        yield from stream
        if summary is not None:
            summary.append(stream.summary)
