"""Escrow holds gain ``owner``: "auction" or "listing" for a hold only an auction or a listing
moves, "" for the holder's own. Existing rows take it from their reference's prefix, as
``escrow_hold`` sets it from now on, before the constraint that ties the two is added."""

from typing import Any

import django.db.models.lookups
from django.db import migrations, models
from django.db.models.lookups import Exact

import ledger.models

# As of this migration (ledger/models.py: ESCROW_OWNER_PREFIXES).
PREFIXES = {"auction": "auction:", "listing": "listing:"}


def backfill(apps: Any, schema_editor: Any) -> None:
    EscrowHold = apps.get_model("ledger", "EscrowHold")
    for owner, prefix in PREFIXES.items():
        # Case-sensitive, as the constraint below (SQLite's LIKE is not).
        EscrowHold.objects.filter(
            Exact(ledger.models.Prefix("reference", len(prefix)), prefix)
        ).update(owner=owner)


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0013_outbox_mail"),
    ]

    operations = [
        migrations.AddField(
            model_name="escrowhold",
            name="owner",
            field=models.CharField(
                blank=True,
                choices=[("", "holder"), ("auction", "auction"), ("listing", "listing")],
                default="",
                max_length=7,
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="escrowhold",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(
                        ("owner", "auction"),
                        django.db.models.lookups.Exact(
                            ledger.models.Prefix("reference", 8), "auction:"
                        ),
                    ),
                    models.Q(
                        ("owner", "listing"),
                        django.db.models.lookups.Exact(
                            ledger.models.Prefix("reference", 8), "listing:"
                        ),
                    ),
                    models.Q(
                        ("owner", ""),
                        models.Q(
                            django.db.models.lookups.Exact(
                                ledger.models.Prefix("reference", 8), "auction:"
                            ),
                            _negated=True,
                        ),
                        models.Q(
                            django.db.models.lookups.Exact(
                                ledger.models.Prefix("reference", 8), "listing:"
                            ),
                            _negated=True,
                        ),
                    ),
                    _connector="OR",
                ),
                name="escrow_hold_owner_by_reference",
            ),
        ),
    ]
