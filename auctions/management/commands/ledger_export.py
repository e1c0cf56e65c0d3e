"""``manage.py ledger_export FILE``: one archive an auditor takes away.

In the auctions app, which builds on the registry (as ``seed_demo``): the archive holds the
ledger and the auctions' revealed keys, and ``ledger`` imports nothing of ``auctions``."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from bluecarbon_audit import bundle
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from auctions.models import Auction
from ledger import tiles
from ledger.signing import trusted_verifiers


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


class Command(BaseCommand):
    help = (
        "Write an export bundle (an uncompressed tar, streamed) for auditors: the log's tiles "
        "and entry bundles (C2SP tlog-tiles), every checkpoint with its witness cosignatures, "
        "the verifier keys and witness policy, each auction's revealed key and result, and a "
        "manifest of every file's SHA-256. FILE '-' writes to standard output. "
        "`bluecarbon-audit verify FILE` checks it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="the .tar to write ('-': standard output)")
        parser.add_argument(
            "--from",
            dest="from_size",
            type=int,
            default=0,
            help="only what is new since the tree of this size (verify with --since a state "
            "saved at that size or later)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        target: str = options["file"]
        if target == "-":
            self._export(sys.stdout.buffer, options["from_size"])
            return
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                summary = self._export(fh, options["from_size"])
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.stdout.write(
            f"{path}: the log at size {summary.size} (from {summary.from_size}): "
            f"{summary.checkpoints} checkpoints, {summary.tiles} hash tiles, {summary.bundles} "
            f"entry bundles, {summary.auctions} auctions; {summary.files} files, "
            f"{summary.bytes:,} bytes"
        )

    def _export(self, fh: IO[bytes], from_size: int) -> bundle.ExportSummary:
        # One snapshot: the checkpoints, tiles and auctions are of the same moment.
        outermost = not connection.in_atomic_block
        with transaction.atomic():
            if connection.vendor == "postgresql" and outermost:
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            latest = tiles.checkpoint_latest()
            if latest is None:
                raise CommandError("no checkpoint has been issued yet: nothing to export")
            if not 0 <= from_size <= latest.size:
                raise CommandError(f"--from must be between 0 and {latest.size}")
            extra_files = {}
            policy = tiles.witness_policy_text()
            if policy is not None:
                extra_files[bundle.POLICY] = policy.encode()
            return bundle.write_export(
                fh,
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
