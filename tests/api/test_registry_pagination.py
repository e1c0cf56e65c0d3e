"""Every registry list pages the same way: ``?after=<id>&limit=<1..500>``, id order,
``next_after`` null exactly at the end, and a walk that sees each row once even while rows
are added."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledger import services
from ledger.models import Account, Batch, Holding, Methodology, Project, Role
from tests import factories

pytestmark = pytest.mark.django_db

# Each list, and how to add one more row to it (seen by an operator's key).
LISTS: dict[str, Callable] = {
    "/api/v1/accounts": lambda w: factories.account(w.buyer),
    "/api/v1/methodologies": lambda w: factories.methodology(),
    "/api/v1/projects": lambda w: factories.project(w.registry, w.developer, w.project.methodology),
    "/api/v1/batches": lambda w: w.issue(year=2000 + Batch.objects.count()),
    "/api/v1/holdings": lambda w: services.credit_transfer(
        actor=factories.OPERATOR,
        batch=Batch.objects.first().pk,
        sender=w.dev_account.pk,
        recipient=factories.account(w.buyer).pk,
        quantity=1,
    ),
}
MODELS = {
    "/api/v1/accounts": lambda: Account.objects.all(),
    "/api/v1/methodologies": lambda: Methodology.objects.all(),
    "/api/v1/projects": lambda: Project.objects.all(),
    "/api/v1/batches": lambda: Batch.objects.all(),
    "/api/v1/holdings": lambda: Holding.objects.exclude(tradable=0, escrowed=0),
}


@pytest.fixture
def operator_client(world, client_for):
    world.issue(year=1999)  # a batch (and holdings) to move credits of
    return client_for(factories.organization(Role.OPERATOR), "read")


def ids_of(url: str) -> list[int]:
    return sorted(MODELS[url]().values_list("pk", flat=True))


@pytest.mark.parametrize("url", sorted(LISTS))
def test_a_walk_sees_every_row_once_in_id_order_even_while_rows_are_added(
    world, operator_client, url
):
    while len(ids_of(url)) < 5:
        LISTS[url](world)
    at_start = ids_of(url)
    seen: list[int] = []
    after, pages = 0, 0
    while after is not None:
        r = operator_client.get(url, {"after": after, "limit": 2})
        assert r.status_code == 200, r.json()
        page = r.json()
        assert set(page) == {"results", "next_after"}
        assert len(page["results"]) <= 2
        seen += [row["id"] for row in page["results"]]
        after, pages = page["next_after"], pages + 1
        if pages == 1:
            LISTS[url](world)  # a new row mid-walk lands after everything seen so far
        assert pages < 20
    assert seen == sorted(set(seen))
    assert set(at_start) <= set(seen)
    assert seen == ids_of(url)  # the row added mid-walk too, at the end


@pytest.mark.parametrize("url", sorted(LISTS))
def test_next_after_is_null_exactly_when_nothing_follows(world, operator_client, url):
    while len(ids_of(url)) < 4:
        LISTS[url](world)
    ids = ids_of(url)
    full = operator_client.get(url, {"limit": len(ids) - 1}).json()
    assert [row["id"] for row in full["results"]] == ids[:-1]
    assert full["next_after"] == ids[-2]
    exact = operator_client.get(url, {"limit": len(ids)}).json()
    assert [row["id"] for row in exact["results"]] == ids
    assert exact["next_after"] is None
    rest = operator_client.get(url, {"after": ids[-2]}).json()
    assert rest == {"results": rest["results"], "next_after": None}
    assert [row["id"] for row in rest["results"]] == ids[-1:]
    assert operator_client.get(url, {"after": ids[-1]}).json() == {
        "results": [],
        "next_after": None,
    }


def test_the_default_page_is_100_rows(world, client_for):
    for _ in range(101 - Methodology.objects.count()):
        factories.methodology()
    client = client_for(world.buyer, "read")
    page = client.get("/api/v1/methodologies").json()
    assert len(page["results"]) == 100
    assert page["next_after"] == page["results"][-1]["id"]
    rest = client.get("/api/v1/methodologies", {"after": page["next_after"]}).json()
    assert len(rest["results"]) == 1
    assert rest["next_after"] is None
    assert len(client.get("/api/v1/methodologies", {"limit": 500}).json()["results"]) == 101


@pytest.mark.parametrize("url", sorted(LISTS))
@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"limit": "0"}, "limit", "min_value"),
        ({"limit": "501"}, "limit", "max_value"),
        ({"limit": "ten"}, "limit", "invalid"),
        ({"after": "-1"}, "after", "min_value"),
        ({"after": "1.5"}, "after", "invalid"),
        ({"after": "9" * 25}, "after", "max_value"),
    ],
)
def test_a_bad_page_parameter_is_400_naming_it(world, client_for, url, params, field, code):
    r = client_for(world.buyer, "read").get(url, params)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid"
    assert body["detail"][field][0]["code"] == code
