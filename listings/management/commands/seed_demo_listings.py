"""``manage.py seed_demo_listings``: DEMO ONLY, one listing sale on the demo registry made by
``seed_demo`` (``listings/demo.py``). Idempotent; refused with ``BLUECARBON_ENV=production``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ledger import services as registry
from ledger.actors import Actor
from listings.demo import seed_listings


class Command(BaseCommand):
    help = "Add a demo listing sale to the demo registry (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo_listings refuses to run with BLUECARBON_ENV=production")
        with transaction.atomic(durable=True):
            x = seed_listings(op=Actor.system("seed_demo"))
        if x is None:
            self.stdout.write("nothing to do (no demo registry, or a listing exists)")
            return
        registry.ledger_checkpoint_issue()
        self.stdout.write(self.style.SUCCESS(f"listing {x.pk} with two purchases"))
