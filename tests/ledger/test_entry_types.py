"""One list of the ledger's entry types, filled by the apps that write them: the feed, the
webhooks and the verifier all know auction entries without ``ledger`` importing ``auctions``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from bluecarbon_audit.listings import LISTING_ENTRY_TYPES
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient

from auctions.core.replay import AUCTION_ENTRY_TYPES
from ledger import entry_types
from ledger.core.replay import ENTRY_TYPES as REGISTRY_TYPES
from ledger.webhooks import webhook_endpoint_create

ROOT = Path(__file__).resolve().parents[2]


def test_the_list_holds_the_registrys_types_and_the_auctions():
    assert entry_types.all_types() == REGISTRY_TYPES | AUCTION_ENTRY_TYPES | LISTING_ENTRY_TYPES
    assert [e.app for e in entry_types.extensions()] == ["auctions", "listings"]


def test_a_type_claimed_by_two_apps_is_refused():
    with pytest.raises(ImproperlyConfigured, match=r"bid\.submit"):
        entry_types.register(entry_types.EntryTypes(app="other", types=frozenset({"bid.submit"})))
    assert "other" not in {e.app for e in entry_types.extensions()}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "type_", sorted(REGISTRY_TYPES | AUCTION_ENTRY_TYPES | LISTING_ENTRY_TYPES)
)
def test_the_feed_filters_by_every_type(type_):
    cache.clear()  # the anonymous throttle's bucket outlives a test's transaction
    response = APIClient().get("/api/v1/ledger/entries", {"type": type_})
    assert response.status_code == 200, response.content
    assert all(e["type"] == type_ for e in response.json()["entries"])


@pytest.mark.django_db
def test_the_feed_still_refuses_a_type_nobody_writes():
    cache.clear()
    response = APIClient().get("/api/v1/ledger/entries", {"type": "bid.sneak"})
    assert response.status_code == 400
    assert response.json()["detail"] == {"type": "invalid_choice"}


def test_webhooks_take_auction_event_types(world):
    endpoint, _ = webhook_endpoint_create(
        actor=world.dev,
        url="https://example.org/hook",
        event_types=["bid.submit", "auction.settle"],
    )
    assert endpoint.event_types == ["auction.settle", "bid.submit"]


def test_no_ledger_module_imports_the_auctions_app():
    offenders = []
    for path in sorted((ROOT / "ledger").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("auctions")
            ]
    assert offenders == []
