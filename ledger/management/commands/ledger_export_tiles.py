"""``manage.py ledger_export_tiles DIR``: the log as a static C2SP tlog-tiles directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bluecarbon_audit.tiledir import TileDirError, export_tiles
from django.core.management.base import BaseCommand, CommandError

from ledger import tiles
from ledger.signing import trusted_verifiers


class Command(BaseCommand):
    help = (
        "Write the log as C2SP tlog-tiles into DIR (checkpoint, tile/<L>/<N>, tile/entries/<N>, "
        "verifier-keys, witness-policy): only what is new since DIR's checkpoint, each file "
        "written atomically, the checkpoint last. Serve DIR with any web server, or copy it: "
        "`bluecarbon-audit verify DIR` checks it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("dir", type=Path)
        parser.add_argument(
            "--no-sync", action="store_true", help="do not fsync each file (faster, less safe)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        root: Path = options["dir"]
        checkpoint = tiles.checkpoint_latest()
        if checkpoint is None:
            raise CommandError("no checkpoint has been issued yet: nothing to export")
        extra = {"verifier-keys": "".join(v.to_string() + "\n" for v in trusted_verifiers())}
        policy = tiles.witness_policy_text()
        if policy is not None:
            extra["witness-policy"] = policy
        try:
            stats = export_tiles(
                root,
                checkpoint=tiles.checkpoint_note(checkpoint),
                read_hashes=tiles.hashes,
                read_entries=tiles.entries,
                extra={name: text.encode() for name, text in extra.items()},
                sync=not options["no_sync"],
            )
        except TileDirError as exc:
            raise CommandError(str(exc)) from None
        if stats.old_size == stats.new_size and not stats.tiles:
            self.stdout.write(f"{root}: up to date at size {stats.new_size}")
            return
        self.stdout.write(
            f"{root}: size {stats.old_size} -> {stats.new_size}: {stats.tiles} hash tiles, "
            f"{stats.bundles} entry bundles ({stats.u32_bundles} in the u32 form), "
            f"{stats.bytes:,} bytes; {stats.removed_partials} superseded partial tiles removed"
        )
