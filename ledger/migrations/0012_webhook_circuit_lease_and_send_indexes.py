"""Webhooks are sent per endpoint by a scheduler (ledger/webhooks.py), not one task per
delivery: an endpoint gets its circuit breaker (failures in a row, open until) and the sender
lease (token, until); an endpoint's pending deliveries are found in ledger order and by due
time through two indexes, instead of beat's scan of every pending delivery by due time.
Existing endpoints start closed and unleased; their pending deliveries are sent by the
scheduler (messages of the old per-delivery task still in the broker do nothing)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0011_idempotency_owner_organization"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="webhookdelivery",
            name="delivery_status_due",
        ),
        migrations.AddField(
            model_name="webhookendpoint",
            name="circuit_open_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="webhookendpoint",
            name="consecutive_failures",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="webhookendpoint",
            name="lease_token",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        migrations.AddField(
            model_name="webhookendpoint",
            name="lease_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                fields=["endpoint", "status", "entry_seq"], name="delivery_send_order"
            ),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(fields=["endpoint", "status", "due_at"], name="delivery_next_due"),
        ),
    ]
