"""Idempotency keys scoped per organization: records stored per API key ("apikey:<prefix>") are
moved to their key's organization ("org:<id>"), so a retry of a request made before the
upgrade, sent with any key of that organization, still replays. Where two keys of one
organization used the same Idempotency-Key, the latest record moves and the others stay as
they were (nothing finds them any more; they expire with the rest after 48 hours)."""

from django.db import migrations, models


def to_organization(apps, schema_editor):
    ApiKey = apps.get_model("ledger", "ApiKey")
    IdempotencyRecord = apps.get_model("ledger", "IdempotencyRecord")
    org_of = {
        f"apikey:{p}": org for p, org in ApiKey.objects.values_list("prefix", "organization_id")
    }
    taken = set(
        IdempotencyRecord.objects.filter(owner__startswith="org:").values_list("owner", "key")
    )
    for record in IdempotencyRecord.objects.filter(owner__startswith="apikey:").order_by(
        "-created_at", "-pk"
    ):
        org = org_of.get(record.owner)
        if org is None or (f"org:{org}", record.key) in taken:
            continue
        taken.add((f"org:{org}", record.key))
        IdempotencyRecord.objects.filter(pk=record.pk).update(owner=f"org:{org}")


def to_api_key(apps, schema_editor):
    """Back to one API key: the organization's oldest key (any of its keys would do, and the
    records are at most 48 hours old). A record whose key that API key used too stays."""
    ApiKey = apps.get_model("ledger", "ApiKey")
    IdempotencyRecord = apps.get_model("ledger", "IdempotencyRecord")
    first: dict[int, str] = {}
    for prefix, org in ApiKey.objects.order_by("-pk").values_list("prefix", "organization_id"):
        first[org] = f"apikey:{prefix}"
    taken = set(
        IdempotencyRecord.objects.filter(owner__startswith="apikey:").values_list("owner", "key")
    )
    for record in IdempotencyRecord.objects.filter(owner__startswith="org:"):
        owner = first.get(int(record.owner[4:]))
        if owner is None or (owner, record.key) in taken:
            continue
        taken.add((owner, record.key))
        IdempotencyRecord.objects.filter(pk=record.pk).update(owner=owner)


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0010_origin_keys"),
    ]

    operations = [
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="owner",
            field=models.CharField(help_text="org:<organization id> or user:<id>", max_length=64),
        ),
        migrations.RunPython(to_organization, to_api_key),
    ]
