"""``manage.py bulk_import FILE --org <handle>``: a JSON Lines file of operations (one
``{"op": ...}`` object per line, as in ``POST /api/v1/bulk``) applied in chunks of up to 1,000,
each chunk all-or-nothing.

Resumable: each applied chunk is recorded (an idempotency record keyed by its first line number
and the SHA-256 of its lines), so running the file again, after fixing a failing line, skips the
chunks that were applied and goes on from the first that was not. A failing chunk stops the
import and names its line."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction
from tqdm import tqdm

from ledger.actors import Actor
from ledger.bulk import MAX_OPERATIONS, bulk_apply
from ledger.exceptions import DomainError
from ledger.models import ApiKey, IdempotencyRecord, Organization, Role


class Command(BaseCommand):
    help = "Apply a JSON Lines file of registry operations in all-or-nothing chunks."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--org", required=True, help="the organization the operations act for")
        parser.add_argument("--chunk", type=int, default=MAX_OPERATIONS)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        org = Organization.objects.filter(handle=options["org"]).first()
        if org is None:
            raise CommandError(f"no organization {options['org']!r}")
        chunk_size = options["chunk"]
        if not 1 <= chunk_size <= MAX_OPERATIONS:
            raise CommandError(f"--chunk must be 1 to {MAX_OPERATIONS}")
        actor = Actor(f"system:bulk_import:{org.handle}", org.pk, org.has_role(Role.OPERATOR))
        owner = f"bulk:{org.handle}"[:64]
        lines = path.read_text().splitlines()
        bar = tqdm(
            total=len(lines),
            unit=" ops",
            file=sys.stderr,
            disable=True if options["no_progress"] else None,
        )
        applied = skipped = 0
        for start in range(0, len(lines), chunk_size):
            chunk = lines[start : start + chunk_size]
            digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()
            key = f"{path.name}:line-{start + 1}:{digest}"[-255:]
            if IdempotencyRecord.objects.filter(owner=owner, key=key).exists():
                skipped += len(chunk)
                bar.update(len(chunk))
                continue
            try:
                operations = [json.loads(line) for line in chunk if line.strip()]
            except json.JSONDecodeError as exc:
                raise CommandError(f"line {start + 1 + exc.lineno - 1}: not JSON") from None
            try:
                with transaction.atomic(durable=True):
                    results = bulk_apply(
                        actor=actor, scopes=frozenset(ApiKey.Scope.values), operations=operations
                    )
                    IdempotencyRecord.objects.create(
                        owner=owner,
                        key=key,
                        request_sha256=digest,
                        status_code=201,
                        response={"applied": len(results)},
                    )
            except DomainError as exc:
                bar.close()
                index = exc.detail.get("index", 0)
                raise CommandError(
                    f"chunk starting at line {start + 1} was not applied (nothing in it was): "
                    f"line {start + 1 + index}: {exc.code}: {exc.message}. {applied} operations "
                    "applied before it; fix the line and run again to resume."
                ) from None
            except IntegrityError:
                raise CommandError("another import of this file is running") from None
            applied += len(results)
            bar.update(len(chunk))
        bar.close()
        self.stdout.write(f"applied {applied} operations, skipped {skipped} already applied")
