"""The demo's listing sale (``seed_demo_listings`` after ``seed_demo``) and the tamper drill's
listing attacks: made on the demo ledger, each is caught by ledger_verify, which names it."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from listings import drill
from listings.models import Listing, Purchase

pytestmark = pytest.mark.django_db


def test_the_demo_lists_and_sells_and_a_second_run_changes_nothing(verify_ledger):
    out = io.StringIO()
    call_command("seed_demo_listings", stdout=out)
    assert "nothing to do" in out.getvalue()  # no demo registry yet
    call_command("seed_demo", stdout=io.StringIO())  # the demo lists one sale itself
    call_command("seed_demo_listings", stdout=out)
    assert "nothing to do" in out.getvalue()
    x = Listing.objects.get()
    assert (x.lots, x.remaining_lots, x.price) == (10, 4, 10_600)
    assert sorted(Purchase.objects.values_list("state", flat=True)) == ["delivered", "pending"]
    call_command("seed_demo_listings", stdout=out)
    assert Listing.objects.count() == 1
    verify_ledger()


def test_it_refuses_to_run_in_production(db, settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo_listings")


@pytest.mark.parametrize("attack", drill.ATTACKS, ids=[a.id for a in drill.ATTACKS])
def test_each_listing_attack_is_caught_and_named(board, verify_ledger, attack):
    x = board.listing()
    board.take(x, board.buyers[0], 3)
    step = attack.plan(None)  # type: ignore[arg-type]
    assert callable(step)
    change = step(None)  # type: ignore[arg-type]
    with pytest.raises(AssertionError) as failure:
        verify_ledger()
    kind, pk = change.split(":")[0].split()
    assert f"{kind} {pk} differs from the ledger" in str(failure.value)
