"""``manage.py ledger_origin_duplicates``: list projects and batches whose origin ids are one
under origin rule 1 although spelled apart (``VCS-2236`` and ``vcs-\\u200b2236`` at Verra).

Since origin rule 1 the database refuses such a pair, but rows registered before it (a database
migrated from before, ``origin_rule`` 0) were compared by exact spelling only. This command
reports them and changes nothing: which of two registrations of one tonne is the double count
is for the registry to decide, and any correction is a ledger entry (a cancellation or a
reversal), never an edit of the rows."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger.selectors import origin_near_duplicates

_PLURAL = {"project": "projects", "batch": "batches"}


class Command(BaseCommand):
    help = (
        "Report projects and batches whose origin ids differ only in spelling (case, width, "
        "invisible characters, whitespace, a VCS- prefix); changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="exit with status 1 when there is any (for scripts and monitoring)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        found = origin_near_duplicates()
        for group in found:
            self.stdout.write(
                f"{_PLURAL[group.kind]} with origin {group.origin_registry} {group.key!r}:\n"
            )
            for c in group.claims:
                # !a: an invisible or full-width character is what makes them differ.
                self.stdout.write(
                    f"  {c.name} (id {c.pk}): registry {c.origin_registry!a}, "
                    f"id {c.origin_id!a}, origin rule {c.origin_rule}\n"
                )
        projects = sum(1 for g in found if g.kind == "project")
        self.stdout.write(
            f"{projects} project origin(s) and {len(found) - projects} batch origin(s) "
            "registered more than once\n"
        )
        if found and options["check"]:
            raise CommandError("near-duplicate origins found")
