"""``/api/v1/transfers``: making one (every refusal, and that it changes nothing) and listing
the caller's, read from the ledger."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import services
from ledger.apis import credits
from ledger.core.entry import decode_entry
from ledger.models import Holding, LedgerEntry, Role
from tests import factories
from tests.factories import World

pytestmark = pytest.mark.django_db


@pytest.fixture
def w(world: World) -> World:
    world.batch = world.issue(5_000_000)  # the developer holds 4,000 t, the buffer 1,000 t
    return world


def payload(w: World, **changes: Any) -> dict[str, Any]:
    return {
        "batch": w.batch.pk,
        "sender": w.dev_account.pk,
        "recipient": w.buyer_account.pk,
        "quantity": "2340.1",
        **changes,
    }


def move(w: World, kg: int, sender=None, recipient=None, batch=None) -> LedgerEntry:
    return services.credit_transfer(
        actor=factories.OPERATOR,
        batch=(batch or w.batch).pk,
        sender=(sender or w.dev_account).pk,
        recipient=(recipient or w.buyer_account).pk,
        quantity=kg,
    )


# ---- POST ---------------------------------------------------------------------------------------


def test_a_transfer_answers_with_its_ledger_entry(w, client_for):
    r = client_for(w.developer, "transfer").post("/api/v1/transfers", payload(w), format="json")
    assert r.status_code == 201, r.json()
    body = r.json()
    entry = LedgerEntry.objects.get(seq=body["entry_seq"])
    decoded = decode_entry(bytes(entry.body))
    assert entry.type == "credit.transfer"
    assert body == {
        "entry_seq": entry.seq,
        "batch": w.batch.pk,
        "sender": w.dev_account.pk,
        "recipient": w.buyer_account.pk,
        "quantity": "2340.100",
        "time": decoded.time,
    }
    assert decoded.data["quantity"] == 2_340_100
    assert Holding.objects.get(account=w.buyer_account, batch=w.batch).tradable == 2_340_100


REFUSALS = [
    # (what, changes to the payload, status, code)
    ("a quantity more precise than a kilogram", {"quantity": "1.0001"}, 400, "invalid"),
    ("a float quantity", {"quantity": 1.5}, 400, "invalid"),
    ("a zero quantity", {"quantity": "0"}, 400, "invalid"),
    ("a negative quantity", {"quantity": "-1"}, 400, "invalid"),
    ("a missing batch", {"batch": None}, 400, "invalid"),
    ("an unknown batch", {"batch": 10**9}, 404, "not_found"),
    ("an id too large for the database", {"batch": 2**63}, 400, "invalid"),  # ids: 1 to 2**62
    ("an id as a string", {"batch": "1"}, 400, "invalid"),
    ("a quantity as a number", {"quantity": 1}, 400, "invalid"),
    ("an unknown recipient", {"recipient": 10**9}, 404, "not_found"),
    ("more than the sender holds", {"quantity": "4000.001"}, 409, "insufficient_balance"),
    ("a transfer to the sender itself", {"recipient": "sender"}, 422, "transfer_to_self"),
    ("a transfer into a buffer pool", {"recipient": "buffer"}, 422, "buffer_account"),
]


@pytest.mark.parametrize(
    ("what", "changes", "status", "code"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_a_refused_transfer_changes_nothing(w, client_for, what, changes, status, code):
    body = payload(w, **changes)
    if body["recipient"] == "sender":
        body["recipient"] = w.dev_account.pk
    elif body["recipient"] == "buffer":
        body["recipient"] = w.buffer.pk
    body = {k: v for k, v in body.items() if v is not None}
    before = LedgerEntry.objects.count()
    r = client_for(w.developer, "transfer").post("/api/v1/transfers", body, format="json")
    assert (r.status_code, r.json()["code"]) == (status, code), r.json()
    assert set(r.json()) == {"code", "message", "detail"}
    assert LedgerEntry.objects.count() == before
    assert Holding.objects.get(account=w.dev_account, batch=w.batch).tradable == 4_000_000


def test_another_organizations_account_cannot_send_and_is_not_found(w, client_for, ledger_length):
    before = ledger_length()
    r = client_for(w.buyer, "transfer").post("/api/v1/transfers", payload(w), format="json")
    assert r.status_code == 404
    assert r.json()["detail"] == {"sender": "not_found"}
    assert ledger_length() == before


def test_retired_credits_never_move_again(w, client_for, ledger_length):
    services.credit_retire(
        actor=w.dev,
        batch=w.batch.pk,
        account=w.dev_account.pk,
        quantity=4_000_000,
        beneficiary="B",
        purpose="P",
        jurisdiction="CN-GD",
    )
    before = ledger_length()
    r = client_for(w.developer).post("/api/v1/transfers", payload(w), format="json")
    assert (r.status_code, r.json()["code"]) == (409, "credits_retired")
    assert ledger_length() == before


def test_a_key_without_the_transfer_scope_is_403_and_changes_nothing(w, client_for, ledger_length):
    before = ledger_length()
    r = client_for(w.developer, "read", "retire").post(
        "/api/v1/transfers", payload(w), format="json"
    )
    assert (r.status_code, r.json()["code"]) == (403, "permission_denied")
    assert ledger_length() == before


# ---- GET ----------------------------------------------------------------------------------------


def test_the_list_shows_transfers_from_or_to_the_callers_accounts_oldest_first(w, client_for):
    other = World()
    ob = other.issue(1_000_000)
    first = move(w, 1_500)
    move(other, 9, other.dev_account, other.buyer_account, ob)  # strangers' business
    second = move(w, 1_000, w.buyer_account, w.dev_account)  # some back to the developer
    listed = client_for(w.buyer).get("/api/v1/transfers").json()
    assert listed["next_after"] is None
    assert [(t["entry_seq"], t["sender"], t["quantity"]) for t in listed["results"]] == [
        (first.seq, w.dev_account.pk, "1.500"),
        (second.seq, w.buyer_account.pk, "1.000"),
    ]
    assert listed["results"][0]["time"] == decode_entry(bytes(first.body)).time
    assert client_for(factories.organization(Role.BIDDER)).get("/api/v1/transfers").json() == {
        "results": [],
        "next_after": None,
    }


def test_an_operator_lists_every_transfer(w, client_for):
    other = World()
    ob = other.issue(1_000_000)
    move(w, 1)
    move(other, 1, other.dev_account, other.buyer_account, ob)
    operator = factories.organization(Role.OPERATOR)
    assert len(client_for(operator).get("/api/v1/transfers").json()["results"]) == 2


def test_the_list_filters_by_account_and_by_batch(w, client_for):
    second_batch = w.issue(1_000_000, year=2022)
    third = factories.account(w.developer, "Trading")
    a = move(w, 1)
    b = move(w, 2, recipient=third)
    c = move(w, 3, batch=second_batch)
    client = client_for(w.developer)

    def seqs(query: str) -> list[int]:
        r = client.get(f"/api/v1/transfers?{query}")
        assert r.status_code == 200, r.json()
        return [t["entry_seq"] for t in r.json()["results"]]

    assert seqs("") == [a.seq, b.seq, c.seq]
    assert seqs(f"account={third.pk}") == [b.seq]
    assert seqs(f"batch={second_batch.pk}") == [c.seq]
    assert seqs(f"account={w.buyer_account.pk}&batch={w.batch.pk}") == [a.seq]


def test_the_list_pages_by_entry_seq_and_next_after_is_null_exactly_at_the_end(w, client_for):
    moved = [move(w, n).seq for n in range(1, 6)]
    client = client_for(w.buyer)
    page1 = client.get("/api/v1/transfers?limit=2").json()
    assert [t["entry_seq"] for t in page1["results"]] == moved[:2]
    assert page1["next_after"] == moved[1]
    page2 = client.get(f"/api/v1/transfers?limit=2&after={page1['next_after']}").json()
    page3 = client.get(f"/api/v1/transfers?limit=2&after={page2['next_after']}").json()
    assert [t["entry_seq"] for t in page2["results"] + page3["results"]] == moved[2:]
    assert page3["next_after"] is None
    exact = client.get(f"/api/v1/transfers?limit=3&after={page1['next_after']}").json()
    assert exact["next_after"] is None  # a full last page says so too


def test_a_page_stops_at_the_scan_budget_and_says_where_to_go_on(w, client_for, monkeypatch):
    monkeypatch.setattr(credits, "SCAN", 3)
    monkeypatch.setattr(credits, "CHUNK", 2)
    other = World()
    ob = other.issue(1_000_000)
    noise = [move(other, 1, other.dev_account, other.buyer_account, ob).seq for _ in range(4)]
    mine = move(w, 7)
    client = client_for(w.buyer)
    first = client.get("/api/v1/transfers").json()
    assert first == {"results": [], "next_after": noise[2]}  # three read, none the buyer's
    second = client.get(f"/api/v1/transfers?after={first['next_after']}").json()
    assert [t["entry_seq"] for t in second["results"]] == [mine.seq]
    assert second["next_after"] is None


@pytest.mark.parametrize(
    "query",
    ["after=-1", "after=x", "limit=0", "limit=501", "account=abc", "batch=0", f"batch={2**63}"],
)
def test_a_bad_query_parameter_is_400_naming_it(w, client_for, query):
    r = client_for(w.developer).get(f"/api/v1/transfers?{query}")
    assert r.status_code == 400
    assert r.json()["code"] == "invalid"
    assert query.split("=")[0] in r.json()["detail"]
