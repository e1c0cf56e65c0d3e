from __future__ import annotations

from django.core.management import call_command

from ledger import services


def test_a_small_world_verifies(world):
    b = world.issue(2_340_100)
    services.credit_transfer(
        actor=world.dev,
        batch=b.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=100_000,
    )
    services.credit_retire(
        actor=world.buy,
        batch=b.pk,
        account=world.buyer_account.pk,
        quantity=1_000,
        beneficiary="Ningbo Bank",
        purpose="2023 offsets",
        jurisdiction="CN-ZJ",
    )
    services.ledger_checkpoint_issue()
    call_command("ledger_verify", "--no-progress")
