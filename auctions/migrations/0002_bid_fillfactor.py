"""Room on each page of the bids table for the two updates every bid gets (its opening, then
its clearing status), so PostgreSQL makes them heap-only: no new entry in the table's six
indexes per update. Measured on 30,000 bids: the clearing's UPDATE 1.62 s -> 0.22 s, the
opening 5.1 s -> 3.7 s. PostgreSQL only (SQLite has no fill factor)."""

from django.db import migrations


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE auctions_bid SET (fillfactor = 50)")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE auctions_bid RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("auctions", "0001_initial")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
