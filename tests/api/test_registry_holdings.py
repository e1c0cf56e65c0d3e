"""GET /holdings: the caller's positions, and nobody else's."""

from __future__ import annotations

import pytest

from ledger import services
from ledger.models import Holding, Role
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def positions(world):
    """Two batches; the developer sold part of one to the buyer and escrowed some of the other,
    and the buyer's second account received, then gave back, everything it got."""
    first = world.issue(1_000_000, year=2021)
    second = world.issue(2_000_000, year=2022, share_bp=0)
    dev, buyer = world.dev_account.pk, world.buyer_account.pk
    services.credit_transfer(
        actor=world.dev, batch=first.pk, sender=dev, recipient=buyer, quantity=234_100
    )
    services.escrow_hold(actor=world.dev, batch=second.pk, account=dev, quantity=5, reference="x")
    spare = factories.account(world.buyer, "Spare")
    services.credit_transfer(
        actor=world.buy, batch=first.pk, sender=buyer, recipient=spare.pk, quantity=100
    )
    services.credit_transfer(
        actor=world.buy, batch=first.pk, sender=spare.pk, recipient=buyer, quantity=100
    )
    return {"first": first, "second": second, "spare": spare}


def holding_json(account, batch) -> dict:
    h = Holding.objects.get(account=account, batch=batch)
    return {
        "id": h.pk,
        "account": account.pk,
        "batch": batch.pk,
        "batch_serial": batch.serial,
        "tradable": f"{h.tradable // 1000}.{h.tradable % 1000:03d}",
        "escrowed": f"{h.escrowed // 1000}.{h.escrowed % 1000:03d}",
    }


def test_the_caller_sees_its_own_positions_in_id_order(world, positions, client_for):
    first, second = positions["first"], positions["second"]
    r = client_for(world.developer, "read").get("/api/v1/holdings")
    assert r.status_code == 200
    assert r.json() == {
        "results": [
            holding_json(world.dev_account, first),
            holding_json(world.dev_account, second),
        ],
        "next_after": None,
    }
    assert [(h["tradable"], h["escrowed"]) for h in r.json()["results"]] == [
        ("565.900", "0.000"),
        ("1999.995", "0.005"),
    ]


def test_a_holding_back_at_zero_is_not_a_position(world, positions, client_for):
    spare = positions["spare"]
    assert Holding.objects.filter(account=spare).exists()  # it exists, at zero
    results = client_for(world.buyer, "read").get("/api/v1/holdings").json()["results"]
    assert results == [holding_json(world.buyer_account, positions["first"])]
    assert results[0]["tradable"] == "234.100"


def test_nobody_sees_another_organizations_positions(world, positions, client_for):
    stranger = factories.organization(Role.BIDDER)
    client = client_for(stranger, "read")
    assert client.get("/api/v1/holdings").json() == {"results": [], "next_after": None}
    # Naming a foreign account in the filter reveals nothing either.
    r = client.get("/api/v1/holdings", {"account": world.dev_account.pk})
    assert r.json() == {"results": [], "next_after": None}


def test_an_operator_sees_every_position_including_buffer_pools(world, positions, client_for):
    operator = factories.organization(Role.OPERATOR)
    results = client_for(operator, "read").get("/api/v1/holdings").json()["results"]
    expected = Holding.objects.exclude(tradable=0, escrowed=0).order_by("pk")
    assert [h["id"] for h in results] == [h.pk for h in expected]
    assert world.buffer.pk in {h["account"] for h in results}


def test_holdings_filter_by_account_and_batch(world, positions, client_for):
    first, second = positions["first"], positions["second"]
    operator = factories.organization(Role.OPERATOR)
    client = client_for(operator, "read")

    def listed(**params) -> list[tuple[int, int]]:
        r = client.get("/api/v1/holdings", params)
        assert r.status_code == 200, r.json()
        return [(h["account"], h["batch"]) for h in r.json()["results"]]

    assert listed(account=world.dev_account.pk) == [
        (world.dev_account.pk, first.pk),
        (world.dev_account.pk, second.pk),
    ]
    assert listed(batch=second.pk) == [(world.dev_account.pk, second.pk)]
    assert listed(batch=first.pk, account=world.buyer_account.pk) == [
        (world.buyer_account.pk, first.pk)
    ]
    assert listed(batch=999_999) == []


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"account": "-1"}, "account", "min_value"),
        ({"account": "main"}, "account", "invalid"),
        ({"batch": "1.5"}, "batch", "invalid"),
        ({"batch": "9" * 1001}, "batch", "max_string_length"),
    ],
)
def test_a_bad_holdings_filter_is_400_naming_it(world, client_for, params, field, code):
    r = client_for(world.buyer, "read").get("/api/v1/holdings", params)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid"
    assert body["detail"][field][0]["code"] == code


def test_holdings_need_the_read_scope(world, client_for):
    assert client_for(world.buyer, "transfer").get("/api/v1/holdings").status_code == 403
