"""A pending webhook delivery's due time, so that beat finds the ones no task will send
(ledger/webhooks.py ``webhook_deliveries_resend``). Existing rows get the migration's time:
pending ones left by a lost message are sent again once WEBHOOK_STALE_SECONDS have passed."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0008_worker_heartbeat"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookdelivery",
            name="due_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(fields=["status", "due_at"], name="delivery_status_due"),
        ),
    ]
