"""``manage.py ledger_export FILE``: one archive an auditor takes away (``auctions/export.py``)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from bluecarbon_audit import bundle
from django.core.management.base import BaseCommand, CommandError

from auctions.export import NothingToExport, export_stream


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
        summary: list[bundle.ExportSummary] = []
        try:
            for piece in export_stream(from_size, summary):
                fh.write(piece)
        except (NothingToExport, ValueError) as exc:
            raise CommandError(str(exc)) from None
        return summary[0]
