# Origin keys (issue 14, item 3): existing rows keep rule 0, no key (ledger_origin_duplicates).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0009_webhook_delivery_due_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="batch",
            name="origin_rule",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="batch",
            name="origin_tx_key",
            field=models.CharField(blank=True, max_length=128, null=True),
        ),
        migrations.AddField(
            model_name="project",
            name="origin_key",
            field=models.CharField(blank=True, max_length=128, null=True),
        ),
        migrations.AddField(
            model_name="project",
            name="origin_rule",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddConstraint(
            model_name="batch",
            constraint=models.UniqueConstraint(
                condition=models.Q(("origin_tx_key__isnull", False)),
                fields=("origin_registry", "origin_tx_key"),
                name="batch_origin_tx_key_unique",
            ),
        ),
        migrations.AddConstraint(
            model_name="batch",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("origin_rule", 0), ("origin_tx_key__isnull", True)),
                    models.Q(
                        ("origin_rule__gte", 1),
                        ("origin_tx_id__isnull", True),
                        ("origin_tx_key__isnull", True),
                    ),
                    models.Q(
                        ("origin_rule__gte", 1),
                        ("origin_tx_id__isnull", False),
                        ("origin_tx_key__isnull", False),
                    ),
                    _connector="OR",
                ),
                name="batch_origin_tx_key_rule",
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.UniqueConstraint(
                condition=models.Q(("origin_key__isnull", False)),
                fields=("origin_registry", "origin_key"),
                name="project_origin_key_unique",
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("origin_key__isnull", True), ("origin_rule", 0)),
                    models.Q(("origin_key__isnull", False), ("origin_rule__gte", 1)),
                    _connector="OR",
                ),
                name="project_origin_key_rule",
            ),
        ),
    ]
