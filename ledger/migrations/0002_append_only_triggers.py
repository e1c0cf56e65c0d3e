from __future__ import annotations

from django.db import migrations


def install(apps, schema_editor):
    from ledger import triggers

    triggers.install(schema_editor.connection)


def uninstall(apps, schema_editor):
    from ledger import triggers

    triggers.uninstall(schema_editor.connection)


def seed_heads(apps, schema_editor):
    apps.get_model("ledger", "LedgerHead").objects.get_or_create(pk=1)
    apps.get_model("ledger", "TreeHead").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [
        migrations.RunPython(install, uninstall),
        migrations.RunPython(seed_heads, migrations.RunPython.noop),
    ]
