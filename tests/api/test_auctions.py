"""The auctions API, as a registry (the seller) and bidders use it: decimal strings at the edge,
a sealed bid in and a signed receipt out, amend and withdraw, the published result."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from django.conf import settings

from auctions.core import sealing
from ledger.core.note import NoteError, Verifier, open_note
from ledger.models import LedgerEntry
from ledger.signing import trusted_verifiers
from tests.auctions.conftest import Market, run_to_settlement


@pytest.fixture
def market(db) -> Market:
    return Market()


def _create(client, m: Market, **change):
    now = dt.datetime.now(dt.UTC)
    body = {
        "title": "Xihu Port seaweed sink, 2022",
        "account": m.seller_account.pk,
        "batch": m.batch.pk,
        "format": "uniform",
        "quantity": "2340.1",
        "lot_size": "0.1",
        "currency": "CNY",
        "price_tick": "1.00",
        "reserve_price": "30.00",
        "bidder_cap": "25",
        "deposit_required": "30000.00",
        "tie_rule": "pro_rata",
        "undersubscribed": "settle",
        "opens_at": (now - dt.timedelta(seconds=1)).isoformat(),
        "closes_at": (now + dt.timedelta(seconds=60)).isoformat(),
        **change,
    }
    return client.post("/api/v1/auctions", body, format="json")


def test_a_seller_creates_and_schedules_an_auction_with_decimal_strings(market, client_for):
    seller = client_for(market.seller, "auction", "read")
    r = _create(seller, market)
    assert r.status_code == 201, r.json()
    a = r.json()
    assert a["state"] == "draft" and a["sealing"] is None
    assert (a["quantity"], a["lot_size"], a["offered_lots"]) == ("2340.100", "0.100", 23401)
    assert (a["price_tick"], a["reserve_price"], a["deposit_required"]) == (
        "1.00",
        "30.00",
        "30000.00",
    )
    assert a["bidder_cap"] == "25.00"
    assert a["batch"]["project"]["ecosystem"] == "mangrove"

    r = seller.post(f"/api/v1/auctions/{a['id']}/schedule", format="json")
    assert r.status_code == 200, r.json()
    a = r.json()
    assert a["state"] == "open"
    assert len(base64.b64decode(a["sealing"]["public_key"])) == 32
    assert a["sealing"]["origin"] == settings.LEDGER_ORIGIN
    assert a["private_key"] is None
    assert 0 < a["seconds_to_close"] <= 60
    # Public: anyone reads the notice.
    from rest_framework.test import APIClient

    anonymous = APIClient()
    assert anonymous.get(f"/api/v1/auctions/{a['id']}").json()["sealing"] == a["sealing"]
    assert [x["id"] for x in anonymous.get("/api/v1/auctions?state=open").json()["results"]] == [
        a["id"]
    ]
    assert anonymous.get("/api/v1/auctions?ecosystem=seagrass").json()["results"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reserve_price": "30.005"}, "reserve_price"),  # finer than a fen
        ({"price_tick": "-1"}, "price_tick"),
        ({"quantity": "2340.1001"}, "quantity"),
        ({"bidder_cap": "25.001"}, "bidder_cap"),
        ({"currency": "XAU"}, "currency"),
        ({"format": "dutch"}, "format"),
        ({"opens_at": "tomorrow"}, "opens_at"),
    ],
)
def test_over_precise_or_malformed_rules_are_400_naming_the_field(
    market, client_for, ledger_length, change, field
):
    before = ledger_length()
    r = _create(client_for(market.seller, "auction"), market, **change)
    assert r.status_code == 400
    assert r.json()["code"] == "invalid"
    assert field in r.json()["detail"]
    assert ledger_length() == before


def test_rules_the_engine_cannot_run_are_400_with_a_code(market, client_for, ledger_length):
    before = ledger_length()
    r = _create(client_for(market.seller, "auction"), market, lot_size="0.3")  # not whole lots
    assert r.status_code == 400 and r.json()["code"] == "invalid_rules"
    r = _create(client_for(market.seller, "auction"), market, price_tick="0.01")  # 0.1 t lots
    assert r.status_code == 400 and r.json()["code"] == "invalid_rules"
    assert ledger_length() == before


def _open_auction(market, client_for):
    seller = client_for(market.seller, "auction", "read")
    a = _create(seller, market, deposit_required="0").json()
    return seller.post(f"/api/v1/auctions/{a['id']}/schedule", format="json").json()


def _seal(a: dict, bidder, tiers) -> str:
    return base64.b64encode(
        sealing.seal(
            public_key=base64.b64decode(a["sealing"]["public_key"]),
            origin=a["sealing"]["origin"],
            auction=a["id"],
            bidder=bidder.pk,
            tiers=[{"price": p, "lots": n} for p, n in tiers],
        )
    ).decode()


def test_a_bidder_submits_amends_and_withdraws_with_signed_receipts(market, client_for):
    a = _open_auction(market, client_for)
    b1 = market.bidders[0]
    bidder = client_for(b1, "bid", "read")
    ciphertext = _seal(a, b1, [(10600, 100)])
    r = bidder.post(f"/api/v1/auctions/{a['id']}/bids", {"ciphertext": ciphertext}, format="json")
    assert r.status_code == 201, r.json()
    bid = r.json()
    # The hand-written answer to a new bid is exactly what the documented serializer shows.
    from auctions import selectors
    from auctions.apis import BidOutputSerializer

    assert bid == BidOutputSerializer(selectors.bid_get(bid["id"])).data
    (receipt,) = bid["receipts"]
    raw = base64.b64decode(ciphertext)
    assert receipt["commitment"] == bid["commitment"] == sealing.commitment(raw).hex()
    # The receipt is a signed note by the receipt key: it verifies with the published receipt
    # keys, and not with the ledger's checkpoint keys.
    published = bidder.get("/api/v1/auctions/receipts/verifier-keys").content.decode().split()
    note = open_note(receipt["note"], [Verifier.from_string(k) for k in published])
    assert [v.name for v in note.verified] == [f"{settings.LEDGER_ORIGIN}/receipts"]
    with pytest.raises(NoteError):
        open_note(receipt["note"], trusted_verifiers())
    assert f"commitment {receipt['commitment']}\n" in note.text
    assert f"entry {receipt['entry_seq']}\n" in note.text
    entry = LedgerEntry.objects.get(seq=receipt["entry_seq"])
    assert entry.type == "bid.submit"
    # The ledger has the ciphertext and its commitment, never the plaintext.
    assert b"10600" not in bytes(entry.body) and receipt["commitment"].encode() in bytes(entry.body)

    url = f"/api/v1/auctions/{a['id']}/bids/{bid['id']}"
    r = bidder.put(url, {"ciphertext": _seal(a, b1, [(10700, 100)])}, format="json")
    assert r.status_code == 200 and r.json()["version"] == 2
    assert [x["action"] for x in r.json()["receipts"]] == ["submit", "amend"]
    # The same bytes again are not a second bid.
    r = bidder.post(f"/api/v1/auctions/{a['id']}/bids", {"ciphertext": ciphertext}, format="json")
    assert r.status_code == 201  # the first version's bytes are free again after the amend
    second = r.json()["id"]
    r = bidder.post(f"/api/v1/auctions/{a['id']}/bids", {"ciphertext": ciphertext}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "duplicate_ciphertext"
    r = bidder.delete(url)
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"
    mine = bidder.get(f"/api/v1/auctions/{a['id']}/bids/mine").json()
    assert [(x["id"], x["status"]) for x in mine["results"]] == [
        (bid["id"], "withdrawn"),
        (second, "sealed"),
    ]
    assert mine["next_after"] is None
    assert [b["id"] for b in bidder.get("/api/v1/bids").json()["results"]] == [bid["id"], second]
    # Another bidder sees neither bid as its own.
    other = client_for(market.bidders[1], "bid", "read")
    assert other.get(url).status_code == 404
    assert other.delete(url).status_code == 404
    book = other.get(f"/api/v1/auctions/{a['id']}/book").json()
    assert [(x["bid"], x["status"], x["version"]) for x in book["results"]] == [
        (bid["id"], "withdrawn", 3),
        (second, "sealed", 1),
    ]


def test_bidding_errors_are_stable_codes(market, client_for, ledger_length):
    a = _open_auction(market, client_for)
    b1 = market.bidders[0]
    bidder = client_for(b1, "bid", "read")
    url = f"/api/v1/auctions/{a['id']}/bids"
    before = ledger_length()
    assert bidder.post(url, {"ciphertext": "!!"}, format="json").json()["code"] == (
        "malformed_ciphertext"
    )
    assert bidder.post(url, {}, format="json").json()["code"] == "invalid"
    r = client_for(b1, "read").post(url, {"ciphertext": _seal(a, b1, [(1, 1)])}, format="json")
    assert r.status_code == 403  # the key lacks the bid scope
    assert bidder.get(f"/api/v1/auctions/{a['id']}/bids/mine").json() == {
        "results": [],
        "next_after": None,
    }
    assert bidder.get(f"/api/v1/auctions/{a['id']}/bids/12345").status_code == 404
    r = bidder.post(
        "/api/v1/auctions/999999/bids", {"ciphertext": _seal(a, b1, [(1, 1)])}, format="json"
    )
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert ledger_length() == before


def test_the_result_is_published_with_the_key_after_clearing(market, client_for):
    m = market
    a = m.auction(closes_in=1.2)
    b1 = m.bidders[0]
    m.bid(a, b1, [(5000, 10)])
    from rest_framework.test import APIClient

    anonymous = APIClient()
    before = anonymous.get(f"/api/v1/auctions/{a.pk}/result").json()
    assert before == {"state": "open", "result_sha256": "", "private_key": None, "result": None}
    run_to_settlement(a)
    after = anonymous.get(f"/api/v1/auctions/{a.pk}/result").json()
    assert after["state"] == "settled"
    assert after["private_key"] and after["result_sha256"]
    assert after["result"]["outcome"]["awards"][0]["bidder"] == b1.pk
    detail = anonymous.get(f"/api/v1/auctions/{a.pk}").json()
    assert detail["clearing_price"] == "30.00"  # undersubscribed: the reserve
    assert detail["private_key"] == after["private_key"]


def test_my_bids_in_an_auction_are_a_page_like_every_list(market, client_for):
    """issue 13, part 4: ``GET …/bids/mine`` answers the documented page shape and pages by
    ``after``/``limit``; a bad parameter is a 400 naming it."""
    a = _open_auction(market, client_for)
    b1 = market.bidders[0]
    bidder = client_for(b1, "bid", "read")
    url = f"/api/v1/auctions/{a['id']}/bids"
    ids = [
        bidder.post(url, {"ciphertext": _seal(a, b1, [(5000 + 100 * i, 1)])}, format="json").json()[
            "id"
        ]
        for i in range(3)
    ]
    first = bidder.get(f"{url}/mine?limit=2").json()
    assert [b["id"] for b in first["results"]] == ids[:2]
    assert first["next_after"] == ids[1]
    rest = bidder.get(f"{url}/mine?limit=2&after={first['next_after']}").json()
    assert [b["id"] for b in rest["results"]] == ids[2:] and rest["next_after"] is None
    r = bidder.get(f"{url}/mine?limit=0")
    assert r.status_code == 400 and "limit" in r.json()["detail"]


def test_a_trustee_sealed_auction_is_scheduled_with_an_idempotency_key_and_replayed(
    market, client_for
):
    """Its sealing rules carry a time (release_by) that a retry's stored answer must keep."""
    from tests.auctions.test_trustees import Trustees

    board = Trustees(3)
    closes = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
    seller = client_for(market.seller, "auction", "read")
    r = _create(
        seller,
        market,
        closes_at=closes.isoformat(),
        sealing="trustees",
        trustees=[o.pk for o in board.orgs],
        threshold=2,
        release_by=(closes + dt.timedelta(hours=1)).isoformat(),
    )
    assert r.status_code == 201, r.json()
    path = f"/api/v1/auctions/{r.json()['id']}/schedule"
    first = seller.post(path, format="json", HTTP_IDEMPOTENCY_KEY="schedule-1")
    assert first.status_code == 200, first.content
    again = seller.post(path, format="json", HTTP_IDEMPOTENCY_KEY="schedule-1")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    sealing_rules = first.json()["sealing"]
    assert sealing_rules["mode"] == "trustees" and sealing_rules["threshold"] == 2
    assert dt.datetime.fromisoformat(sealing_rules["release_by"]) == closes + dt.timedelta(hours=1)
