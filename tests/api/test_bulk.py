from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from ledger.models import Holding, LedgerEntry
from tests.factories import sha

pytestmark = pytest.mark.django_db


def transfers(world, batch, n, quantity="1"):
    return [
        {
            "op": "transfer",
            "batch": batch.pk,
            "sender": world.dev_account.pk,
            "recipient": world.buyer_account.pk,
            "quantity": quantity,
        }
        for _ in range(n)
    ]


def test_a_thousand_operations_apply_in_one_request(world, client_for):
    b = world.issue(5_000_000)
    ops = [
        {
            "op": "issue",
            "project": world.project.pk,
            "monitoring_start": "2023-01-01",
            "monitoring_end": "2023-12-31",
            "verification_body": "DNV",
            "verification_report_sha256": sha("r"),
            "quantity": "10",
            "buffer_share": "0",
            "holder": world.dev_account.pk,
        },
        *transfers(world, b, 998),
        {
            "op": "retire",
            "batch": b.pk,
            "account": world.buyer_account.pk,
            "quantity": "1",
            "beneficiary": "b",
            "purpose": "p",
            "jurisdiction": "CN-ZJ",
        },
    ]
    r = client_for(world.registry, "issue", "transfer", "retire").post(
        "/api/v1/bulk", {"operations": ops}, format="json"
    )
    assert r.status_code == 201, r.json()
    assert len(r.json()["results"]) == 1000
    assert Holding.objects.get(account=world.buyer_account, batch=b).tradable == 997_000


def test_one_bad_operation_applies_nothing_and_is_named(world, client_for):
    b = world.issue(5_000_000)
    before = LedgerEntry.objects.count()
    ops = transfers(world, b, 999) + transfers(world, b, 1, quantity="999999")
    r = client_for(world.developer, "transfer").post(
        "/api/v1/bulk", {"operations": ops}, format="json"
    )
    assert r.status_code == 409
    assert r.json()["detail"]["index"] == 999
    assert LedgerEntry.objects.count() == before


def test_more_than_a_thousand_operations_is_400(world, client_for):
    b = world.issue()
    r = client_for(world.developer).post(
        "/api/v1/bulk", {"operations": transfers(world, b, 1001)}, format="json"
    )
    assert r.status_code == 400


def test_each_operation_needs_its_scope(world, client_for):
    b = world.issue()
    r = client_for(world.developer, "transfer").post(
        "/api/v1/bulk",
        {
            "operations": [
                *transfers(world, b, 1),
                {
                    "op": "cancel",
                    "batch": b.pk,
                    "account": world.dev_account.pk,
                    "quantity": "1",
                    "reason": "x",
                },
            ]
        },
        format="json",
    )
    assert r.status_code == 403
    assert r.json()["detail"]["index"] == 1


def test_the_jsonl_import_resumes_after_a_failing_chunk(world, tmp_path):
    b = world.issue(5_000_000)
    path = tmp_path / "ops.jsonl"
    good = transfers(world, b, 5)
    bad = transfers(world, b, 1, quantity="1.0001")
    path.write_text("\n".join(json.dumps(o) for o in good + bad + good) + "\n")
    with pytest.raises(CommandError, match="line 6"):
        call_command(
            "bulk_import",
            str(path),
            "--org",
            world.developer.handle,
            "--chunk",
            "3",
            "--no-progress",
            stdout=io.StringIO(),
        )
    assert Holding.objects.get(account=world.buyer_account, batch=b).tradable == 3_000
    # Fix the line; the first chunk was applied and is skipped, the rest goes through.
    path.write_text("\n".join(json.dumps(o) for o in good + transfers(world, b, 1) + good) + "\n")
    out = io.StringIO()
    call_command(
        "bulk_import",
        str(path),
        "--org",
        world.developer.handle,
        "--chunk",
        "3",
        "--no-progress",
        stdout=out,
    )
    assert Holding.objects.get(account=world.buyer_account, batch=b).tradable == 11_000


@pytest.mark.parametrize("seed", range(6))
def test_the_set_based_transfer_path_equals_the_single_service(world, seed):
    """Random runs of transfers (some refused) applied by bulk_apply and, in another
    savepoint, by credit_transfer one by one: same result, same entries, same balances."""
    import random

    from django.db import transaction

    from ledger import services
    from ledger.apis.auth import ALL_SCOPES
    from ledger.bulk import bulk_apply
    from ledger.core.entry import decode_entry
    from ledger.exceptions import DomainError
    from ledger.models import Holding
    from ledger.signing import trusted_verifiers
    from ledger.verify import verify_ledger
    from tests.factories import account

    rng = random.Random(seed)
    b1, b2 = world.issue(50_000, year=2020), world.issue(50_000, year=2021)
    accounts = [
        world.dev_account.pk,
        world.buyer_account.pk,
        account(world.developer, "Second").pk,
        world.buffer.pk,
    ]
    ops = [
        {
            "op": "transfer",
            "batch": rng.choice([b1.pk, b2.pk]),
            "sender": rng.choice(accounts[:3]),
            "recipient": rng.choice(accounts),
            "quantity": str(rng.randint(1, 30_000) / 1000),
        }
        for _ in range(rng.randint(1, 25))
    ]

    def outcome(apply):
        start = LedgerEntry.objects.count()
        try:
            with transaction.atomic():
                apply()
                raise _Rollback(
                    [
                        (
                            e.type,
                            decode_entry(bytes(e.body)).data,
                            decode_entry(bytes(e.body)).actor,
                        )
                        for e in LedgerEntry.objects.filter(seq__gte=start).order_by("seq")
                    ],
                    sorted(Holding.objects.values_list("account_id", "batch_id", "tradable")),
                )
        except DomainError as exc:
            return ("refused", exc.code, exc.detail.get("index"))
        except _Rollback as done:
            return done.args

    def one_by_one():
        for i, op in enumerate(ops):
            try:
                from ledger.core.quantity import parse_tonnes

                services.credit_transfer(
                    actor=world.dev,
                    batch=op["batch"],
                    sender=op["sender"],
                    recipient=op["recipient"],
                    quantity=parse_tonnes(op["quantity"]),
                )
            except DomainError as exc:
                exc.detail = {**exc.detail, "index": i}
                raise

    fast = outcome(lambda: bulk_apply(actor=world.dev, scopes=ALL_SCOPES, operations=ops))
    slow = outcome(one_by_one)
    assert fast == slow
    if fast[0] != "refused":
        with transaction.atomic():
            bulk_apply(actor=world.dev, scopes=ALL_SCOPES, operations=ops)
        verify_ledger(verifiers=trusted_verifiers())


class _Rollback(Exception):
    pass


@pytest.mark.parametrize("op", [{"op": {"x": 1}}, {"op": ["transfer"]}, {"op": None}, "transfer"])
def test_a_malformed_operation_is_400_not_500(world, client_for, op):
    r = client_for(world.developer).post("/api/v1/bulk", {"operations": [op]}, format="json")
    assert r.status_code == 400
