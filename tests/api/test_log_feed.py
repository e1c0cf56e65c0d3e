"""``GET /api/v1/ledger/entries`` and ``/ledger/entries/{seq}``: the public feed's contract."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.core.cache import cache
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from ledger import services
from ledger.models import LedgerEntry
from tests import factories

pytestmark = pytest.mark.django_db

FEED = "/api/v1/ledger/entries"


@pytest.fixture(autouse=True)
def _fresh_throttle():
    # Anonymous calls share one throttle bucket per address across tests (the cache outlives
    # a test's transaction): start each test with an empty one.
    cache.clear()


@pytest.fixture
def client():
    return APIClient()


def transfer(world, batch, quantity=1_000):
    return services.credit_transfer(
        actor=world.dev,
        batch=batch.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=quantity,
    )


@pytest.fixture
def busy(world):
    world.batch = world.issue(5_000_000)
    for q in range(1, 6):
        transfer(world, world.batch, q * 1000)
    return world


def stored(seq: int) -> bytes:
    return bytes(LedgerEntry.objects.get(seq=seq).body)


def test_each_entry_carries_its_exact_bytes_and_their_hashes(busy, client):
    page = client.get(FEED, {"limit": 1000}).json()
    assert len(page["entries"]) == LedgerEntry.objects.count()
    for item in page["entries"]:
        body = stored(item["seq"])
        assert item["canonical"].encode() == body
        assert item["entry_sha256"] == hashlib.sha256(body).hexdigest()
        assert item["leaf_hash"] == hashlib.sha256(b"\x00" + body).hexdigest()
        parsed = json.loads(body)
        assert (item["type"], item["time"]) == (parsed["type"], parsed["time"])
        assert list(item) == ["seq", "type", "time", "canonical", "entry_sha256", "leaf_hash"]


def test_text_beyond_ascii_comes_back_byte_for_byte(world, client):
    org = services.organization_register(
        actor=factories.OPERATOR,
        handle="wanning",
        name='万宁红树林 "Mangroves" — Ñandú \u2028 🌊',
        roles=["developer"],
    )
    seq = LedgerEntry.objects.order_by("-seq").first().seq
    item = client.get(f"{FEED}/{seq}").json()
    assert json.loads(item["canonical"])["data"]["organization"]["name"] == org.name
    assert item["canonical"].encode() == stored(seq)
    assert item["entry_sha256"] == hashlib.sha256(stored(seq)).hexdigest()


def test_the_feed_pages_in_seq_order_until_next_after_is_null(busy, client):
    size = LedgerEntry.objects.count()
    seen, after, pages = [], -1, 0
    while True:
        page = client.get(FEED, {"after": after, "limit": 4}).json()
        pages += 1
        assert page["tree_size"] == size
        seen += [e["seq"] for e in page["entries"]]
        if page["next_after"] is None:
            break
        assert len(page["entries"]) == 4
        assert page["next_after"] == page["entries"][-1]["seq"]
        after = page["next_after"]
    assert seen == list(range(size))
    assert pages == -(-size // 4)  # no empty page at the end


def test_a_full_page_that_reaches_the_end_says_nothing_follows(busy, client):
    size = LedgerEntry.objects.count()
    page = client.get(FEED, {"after": size - 5, "limit": 4}).json()
    assert [e["seq"] for e in page["entries"]] == list(range(size - 4, size))
    assert page["next_after"] is None
    page = client.get(FEED, {"after": size - 6, "limit": 4}).json()
    assert page["next_after"] == size - 2


def test_after_is_exclusive_and_past_the_end_is_an_empty_page(busy, client):
    size = LedgerEntry.objects.count()
    page = client.get(FEED, {"after": 2, "limit": 1}).json()
    assert [e["seq"] for e in page["entries"]] == [3]
    end = client.get(FEED, {"after": size - 1}).json()
    assert end == {"entries": [], "next_after": None, "tree_size": size}


def test_the_default_page_is_100_entries_and_1000_may_be_asked_for(busy, client):
    for q in range(100):
        transfer(busy, busy.batch, 1 + q)
    assert len(client.get(FEED).json()["entries"]) == 100
    everything = client.get(FEED, {"limit": 1000}).json()
    assert len(everything["entries"]) == LedgerEntry.objects.count() > 100
    assert everything["next_after"] is None


def test_a_new_entry_shows_up_after_the_last_seq_a_follower_holds(busy, client):
    page = client.get(FEED, {"limit": 1000}).json()
    last = page["entries"][-1]
    transfer(busy, busy.batch)
    newer = client.get(FEED, {"after": last["seq"]}).json()
    assert [e["seq"] for e in newer["entries"]] == [last["seq"] + 1]
    assert json.loads(newer["entries"][0]["canonical"])["prev"] == last["entry_sha256"]
    assert newer["tree_size"] == last["seq"] + 2


def test_the_feed_filters_by_one_type_or_several(busy, client):
    page = client.get(FEED, {"type": "credit.transfer", "limit": 2}).json()
    assert [e["type"] for e in page["entries"]] == ["credit.transfer"] * 2
    rest = client.get(FEED, {"type": "credit.transfer", "after": page["next_after"]}).json()
    assert [e["type"] for e in rest["entries"]] == ["credit.transfer"] * 3
    assert rest["next_after"] is None
    both = client.get(f"{FEED}?type=batch.issue&type=credit.transfer").json()
    assert [e["type"] for e in both["entries"]] == ["batch.issue"] + ["credit.transfer"] * 5
    assert [e["seq"] for e in both["entries"]] == sorted(e["seq"] for e in both["entries"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "x"}, "after"),
        ({"after": "-2"}, "after"),
        ({"after": "1.5"}, "after"),
        ({"after": " 1"}, "after"),
        ({"after": "1_0"}, "after"),
        ({"after": "\u0663"}, "after"),  # ARABIC-INDIC DIGIT THREE: int() would take it
        ({"after": str(2**62 + 1)}, "after"),
        ({"after": "9" * 400}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"type": "nope"}, "type"),
        ({"type": "CREDIT.TRANSFER"}, "type"),
    ],
)
def test_bad_feed_parameters_are_400_naming_the_parameter(busy, client, params, field):
    r = client.get(FEED, params)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid_field"
    assert field in body["detail"]


def test_one_entry_has_the_feed_shape_and_may_be_cached_for_good(busy, client):
    from_feed = client.get(FEED, {"after": 2, "limit": 1}).json()["entries"][0]
    r = client.get(f"{FEED}/3")
    assert r.status_code == 200
    assert r["Content-Type"] == "application/json"
    assert r.json() == from_feed
    assert "immutable" in r["Cache-Control"]


@pytest.mark.parametrize("seq", ["size", "999999", str(2**62), str(2**70), "-1", "abc", "1e3"])
def test_an_entry_beyond_the_end_or_not_a_number_is_a_json_404(busy, client, seq):
    if seq == "size":
        seq = str(LedgerEntry.objects.count())
    r = client.get(f"{FEED}/{seq}")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    assert "Cache-Control" not in r


def test_no_key_is_needed_and_a_key_does_not_change_the_answer(busy, client, client_for):
    anonymous = client.get(FEED).json()
    keyed = client_for(busy.buyer, "read").get(FEED).json()
    assert anonymous == keyed


def test_anonymous_readers_are_throttled_with_retry_after(busy, client, monkeypatch):
    from rest_framework.throttling import AnonRateThrottle

    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "3/min"})
    statuses = [client.get(FEED).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    r = client.get(f"{FEED}/0")
    assert r.status_code == 429
    assert r.json()["code"] == "throttled"
    assert 1 <= int(r["Retry-After"]) <= 60


def _component(schema: dict, name: str) -> dict:
    return schema["components"]["schemas"][name]


def test_the_openapi_schema_describes_exactly_what_the_feed_sends(busy, client):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    feed, entry = _component(schema, "LedgerFeed"), _component(schema, "LedgerEntry")
    page = client.get(FEED, {"limit": 2}).json()
    assert set(page) == set(feed["properties"]) == set(feed["required"])
    assert set(page["entries"][0]) == set(entry["properties"]) == set(entry["required"])
    operation = schema["paths"]["/api/v1/ledger/entries"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 1000
    assert params["after"]["schema"]["minimum"] == -1
    assert params["type"]["schema"]["type"] == "array"
    assert set(operation["responses"]) == {"200", "400", "401", "406", "429", "503"}
    assert operation["security"] == [{}, {"apiKey": []}]  # public: a key is optional
