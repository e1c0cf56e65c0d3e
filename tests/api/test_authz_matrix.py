"""Who may call what, for every endpoint under /api/v1/.

``MATRIX`` is the specification, written by hand: for each (method, path template as in the
URLconf) the scope it needs, and what a key of an organization that owns none of the objects
involved gets. The endpoints are enumerated from the URL resolver (and cross-checked with the
OpenAPI schema), so a new endpoint fails ``test_every_endpoint_has_a_row`` until its row is
written: nothing ships without a decision about who may call it.

Each row is then checked for: anonymous callers, keys holding one scope each, a stranger's
key, an auditor's key (read + audit) and an operator's key (which acts for everyone).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from auctions import services as auction_services
from auctions.models import Auction
from ledger import services, webhooks
from ledger.models import (
    ApiKey,
    Batch,
    EscrowHold,
    ProjectDocument,
    Retirement,
    Role,
    WebhookEndpoint,
)
from listings import services as listing_services
from listings.models import Listing, Purchase
from tests import factories
from tests.factories import World, sha

pytestmark = pytest.mark.django_db

# The scope column: one of ApiKey.Scope, or
PUBLIC = "public"  # no key needed (the log, the printable certificate, the schema)
ANY_KEY = "any key"  # any key; what it does is checked inside (bulk: each operation's scope)

# The stranger column: what a key of an organization owning none of the objects gets.
NOT_FOUND = "404"  # the object in the path or the body is someone else's: 404, as if missing
FORBIDDEN = "403"  # the object is public, but only its owner changes it: 403
HIDDEN = "hidden"  # a list: 200, and none of the others' rows in it
SHOWN = "shown"  # public data: 200
OWN = "own"  # acts only on the caller's own organization: nothing foreign to try

Body = Callable[["Scene"], dict[str, Any]]


@dataclass(frozen=True)
class Row:
    scope: str
    stranger: str = OWN
    body: Body | None = None  # a request acting on the owner's objects
    query: str = ""  # makes a GET well-formed (required query parameters)
    # What an operator's key gets, if not what acting for the owner gives (2xx, rows shown).
    operator: str | None = None
    # Whose objects these are: "developer" (accounts, holdings, hooks) or "registry" (projects).
    owner: str = "developer"


def _transfer(s: Scene) -> dict[str, Any]:
    w = s.world
    return {
        "batch": s.batch.pk,
        "sender": w.dev_account.pk,
        "recipient": w.buyer_account.pk,
        "quantity": "1",
    }


def _account_batch(s: Scene, **extra: Any) -> dict[str, Any]:
    return {"batch": s.batch.pk, "account": s.world.dev_account.pk, "quantity": "1", **extra}


def _issue(s: Scene) -> dict[str, Any]:
    return {
        "project": s.world.project.pk,
        "monitoring_start": "2030-01-01",
        "monitoring_end": "2030-12-31",
        "verification_body": "DNV",
        "verification_report_sha256": sha("report 2030"),
        "quantity": "100",
        "buffer_share": "20",
        "holder": s.world.dev_account.pk,
    }


def _document_body() -> dict[str, Any]:
    # A multipart upload (``call`` sends a body with a file as multipart/form-data).
    upload = SimpleUploadedFile("survey.txt", b"Sediment survey, plot 7\n", "text/plain")
    return {"kind": "other", "title": "Survey", "file": upload}


def _auction_body(s: Scene) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "title": "Seaweed sink",
        "account": s.world.dev_account.pk,
        "batch": s.batch.pk,
        "format": "uniform",
        "quantity": "10",
        "lot_size": "1",
        "currency": "CNY",
        "price_tick": "1.00",
        "reserve_price": "30.00",
        "tie_rule": "random_order",
        "undersubscribed": "settle",
        "opens_at": (now + dt.timedelta(hours=1)).isoformat(),
        "closes_at": (now + dt.timedelta(hours=2)).isoformat(),
    }


def _listing_body(s: Scene) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "account": s.world.dev_account.pk,
        "batch": s.batch.pk,
        "quantity": "10",
        "lot_size": "1",
        "currency": "CNY",
        "price": "106.00",
        "closes_at": (now + dt.timedelta(hours=2)).isoformat(),
    }


MATRIX: dict[tuple[str, str], Row] = {
    # ---- registry (ledger/apis/registry.py)
    ("GET", "/api/v1/organization"): Row("read"),
    ("GET", "/api/v1/accounts"): Row("read", HIDDEN),
    ("POST", "/api/v1/accounts"): Row("transfer"),
    ("GET", "/api/v1/accounts/{pk}"): Row("read", NOT_FOUND),
    ("GET", "/api/v1/methodologies"): Row("read", SHOWN),
    ("GET", "/api/v1/methodologies/{pk}"): Row("read", SHOWN),
    ("GET", "/api/v1/projects"): Row("read", SHOWN),
    ("POST", "/api/v1/projects"): Row("issue", owner="registry"),
    ("GET", "/api/v1/projects/{pk}"): Row("read", SHOWN),
    ("PATCH", "/api/v1/projects/{pk}"): Row(
        "issue", FORBIDDEN, lambda s: {"name": "Renamed"}, owner="registry"
    ),
    ("GET", "/api/v1/batches"): Row("read", SHOWN),
    ("POST", "/api/v1/batches"): Row("issue", NOT_FOUND, _issue, owner="registry"),
    ("GET", "/api/v1/batches/{pk}"): Row("read", SHOWN),
    ("GET", "/api/v1/holdings"): Row("read", HIDDEN),
    # A project's documents (ledger/apis/documents.py): its registry attaches them, anyone
    # lists and downloads them.
    ("GET", "/api/v1/projects/{pk}/documents"): Row(PUBLIC, SHOWN),
    ("POST", "/api/v1/projects/{pk}/documents"): Row(
        "issue", NOT_FOUND, lambda s: _document_body(), owner="registry"
    ),
    ("GET", "/api/v1/documents/{pk}"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/documents/{pk}/content"): Row(PUBLIC, SHOWN),
    # ---- credits (ledger/apis/credits.py)
    ("GET", "/api/v1/transfers"): Row("read", HIDDEN),
    ("POST", "/api/v1/transfers"): Row("transfer", NOT_FOUND, _transfer),
    ("GET", "/api/v1/escrow-holds"): Row("read", HIDDEN),
    ("POST", "/api/v1/escrow-holds"): Row(
        "transfer", NOT_FOUND, lambda s: _account_batch(s, reference="lot 2")
    ),
    ("GET", "/api/v1/escrow-holds/{pk}"): Row("read", NOT_FOUND),
    ("POST", "/api/v1/escrow-holds/{pk}/release"): Row(
        "transfer", NOT_FOUND, lambda s: {"quantity": "1"}
    ),
    ("GET", "/api/v1/retirements"): Row("read", HIDDEN),
    ("POST", "/api/v1/retirements"): Row(
        "retire",
        NOT_FOUND,
        lambda s: _account_batch(s, beneficiary="B", purpose="P", jurisdiction="CN-GD"),
    ),
    # Retirements are public records: any key reads a certificate, anyone its printable page.
    # The certificate's JSON is as public as the certificate (its page links it).
    ("GET", "/api/v1/retirements/{certificate}"): Row(PUBLIC, SHOWN),
    # The public register (ledger/apis/public_register.py): what the portal's register pages
    # show, to anyone, throttled per address.
    ("GET", "/api/v1/public/projects"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/public/batches"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/public/batches/{pk}"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/public/retirements"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/retirements/{certificate}/certificate.html"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/cancellations"): Row("read", HIDDEN),
    ("POST", "/api/v1/cancellations"): Row(
        "cancel", NOT_FOUND, lambda s: _account_batch(s, reason="exported")
    ),
    ("GET", "/api/v1/reversals"): Row("read", SHOWN),
    ("POST", "/api/v1/reversals"): Row(
        "issue",
        NOT_FOUND,
        lambda s: {
            "project": s.world.project.pk,
            "quantity": "1",
            "evidence_sha256": sha("storm"),
            "description": "Typhoon",
        },
        owner="registry",
    ),
    # ---- the public log (ledger/apis/log.py)
    ("GET", "/api/v1/ledger/entries"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/ledger/entries/{seq}"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/ledger/checkpoints"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/ledger/checkpoints/latest"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/ledger/checkpoints/{size}"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/ledger/proofs/inclusion"): Row(PUBLIC, SHOWN, query="?seq=0"),
    ("GET", "/api/v1/ledger/proofs/consistency"): Row(PUBLIC, SHOWN, query="?first=1&second=2"),
    ("GET", "/api/v1/ledger/verifier-keys"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/ledger/entries/{seq}/proof"): Row(PUBLIC, SHOWN),
    # ---- the log as C2SP tlog-tiles (plain views, not in the schema: docs/api.md)
    ("GET", "/api/v1/ledger/tlog/checkpoint"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/ledger/tlog/tile/{kind}/{rest}"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/ledger/tlog/verifier-keys"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/ledger/tlog/witness-policy"): Row(PUBLIC, SHOWN),
    # ---- webhooks (ledger/apis/webhooks.py): deliveries carry only what the key may read.
    # An operator manages another organization's endpoint by id but lists only its own.
    ("GET", "/api/v1/webhooks"): Row("read", HIDDEN, operator=HIDDEN),
    ("POST", "/api/v1/webhooks"): Row("read"),
    ("DELETE", "/api/v1/webhooks/{pk}"): Row("read", NOT_FOUND),
    ("GET", "/api/v1/webhooks/{pk}/deliveries"): Row("read", NOT_FOUND),
    ("POST", "/api/v1/webhooks/{pk}/replay"): Row("read", NOT_FOUND, lambda s: {"after": -1}),
    # ---- bulk (ledger/apis/bulk.py)
    ("POST", "/api/v1/bulk"): Row(
        ANY_KEY, NOT_FOUND, lambda s: {"operations": [{"op": "transfer", **_transfer(s)}]}
    ),
    # ---- auctions (auctions/apis.py): published notices and results are public; bids are
    # made by the caller's own organization only (an operator does not bid for others).
    ("GET", "/api/v1/auctions"): Row(PUBLIC, SHOWN),
    ("POST", "/api/v1/auctions"): Row("auction", NOT_FOUND, lambda s: _auction_body(s)),
    ("GET", "/api/v1/auctions/{pk}"): Row(PUBLIC, SHOWN),
    ("POST", "/api/v1/auctions/{pk}/schedule"): Row("auction", NOT_FOUND, lambda s: {}),
    ("POST", "/api/v1/auctions/{pk}/cancel"): Row(
        "auction", NOT_FOUND, lambda s: {"reason": "withdrawn"}
    ),
    ("GET", "/api/v1/auctions/{pk}/result"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/auctions/{pk}/book"): Row(PUBLIC, SHOWN),
    ("POST", "/api/v1/auctions/{pk}/bids"): Row("bid"),
    # English auctions' open bids: public to read; the scene's auction is sealed (409 for a
    # raise, after the scope check).
    ("GET", "/api/v1/auctions/{pk}/raises"): Row(PUBLIC, SHOWN),
    ("POST", "/api/v1/auctions/{pk}/raises"): Row("bid"),
    # Clock auctions' rounds (public) and round bids (the caller's own; a bid needs bid).
    ("GET", "/api/v1/auctions/{pk}/rounds"): Row(PUBLIC, SHOWN),
    ("GET", "/api/v1/auctions/{pk}/round-bids"): Row("read"),
    ("POST", "/api/v1/auctions/{pk}/round-bids"): Row("bid"),
    ("GET", "/api/v1/auctions/{pk}/bids/mine"): Row("read"),
    # A bid is only ever its bidder's: anyone else (an operator too) gets 404, as if missing.
    ("GET", "/api/v1/auctions/{pk}/bids/{bid}"): Row("read"),
    ("PUT", "/api/v1/auctions/{pk}/bids/{bid}"): Row("bid"),
    ("DELETE", "/api/v1/auctions/{pk}/bids/{bid}"): Row("bid"),
    ("GET", "/api/v1/bids"): Row("read"),
    # ---- onboarding (auctions/onboarding_apis.py): an operator organization decides with the
    # onboard scope (the services refuse any other: here the owner is the operator registry);
    # a bidder applies and withdraws for itself with bid. The scene's auction is the
    # developer's own, which nobody has applied to: its lists are empty for everyone
    # (tests/api/test_onboarding.py shows an operator every applicant and a stranger none).
    ("POST", "/api/v1/organizations"): Row("onboard", owner="registry"),
    # An organization's standing status as a bidder (the scene's buyer): the operator's.
    ("POST", "/api/v1/organizations/{pk}/bidder/approve"): Row("onboard", owner="registry"),
    ("POST", "/api/v1/organizations/{pk}/bidder/suspend"): Row("onboard", owner="registry"),
    ("GET", "/api/v1/auctions/{pk}/applications"): Row("read", HIDDEN, operator=HIDDEN),
    ("POST", "/api/v1/auctions/{pk}/applications"): Row("bid"),
    ("POST", "/api/v1/auctions/{pk}/applications/{bidder}/approve"): Row(
        "onboard", owner="registry"
    ),
    ("POST", "/api/v1/auctions/{pk}/applications/{bidder}/refuse"): Row(
        "onboard", owner="registry"
    ),
    ("POST", "/api/v1/auctions/{pk}/applications/{bidder}/withdraw"): Row("bid"),
    ("GET", "/api/v1/auctions/{pk}/deposits"): Row("read", HIDDEN, operator=HIDDEN),
    ("POST", "/api/v1/auctions/{pk}/deposits"): Row("onboard", owner="registry"),
    ("POST", "/api/v1/auctions/{pk}/deposits/{bidder}/release"): Row("onboard", owner="registry"),
    ("POST", "/api/v1/auctions/{pk}/deposits/{bidder}/forfeit"): Row("onboard", owner="registry"),
    ("GET", "/api/v1/auctions/receipts/verifier-keys"): Row(PUBLIC, SHOWN),
    # A trustee registers and lists its own keys and releases its own key of an auction; the
    # services refuse an organization without the trustee role (an operator's included).
    ("GET", "/api/v1/trustee-keys"): Row("trustee"),
    ("POST", "/api/v1/trustee-keys"): Row("trustee"),
    ("POST", "/api/v1/auctions/{pk}/key-release"): Row("trustee"),
    # ---- listings (listings/apis.py): the board is public; the seller lists and withdraws
    # (scope auction), a buyer takes (bid), an operator confirms payments and declares defaults
    # (onboard: the services refuse anyone else, 403). A seller sees the purchases of its
    # listings, a buyer its own.
    ("GET", "/api/v1/listings"): Row(PUBLIC, SHOWN),
    ("POST", "/api/v1/listings"): Row("auction", NOT_FOUND, _listing_body),
    ("GET", "/api/v1/listings/{pk}"): Row(PUBLIC, SHOWN),
    ("POST", "/api/v1/listings/{pk}/take"): Row("bid"),
    ("POST", "/api/v1/listings/{pk}/withdraw"): Row("auction", NOT_FOUND, lambda s: {}),
    ("GET", "/api/v1/purchases"): Row("read", HIDDEN),
    ("GET", "/api/v1/purchases/{pk}"): Row("read", NOT_FOUND),
    ("POST", "/api/v1/purchases/{pk}/confirm"): Row(
        "onboard", FORBIDDEN, lambda s: {}, owner="registry"
    ),
    ("POST", "/api/v1/purchases/{pk}/default"): Row(
        "onboard", FORBIDDEN, lambda s: {}, owner="registry"
    ),
    # ---- the OpenAPI document itself
    ("GET", "/api/v1/schema/"): Row(PUBLIC, SHOWN),
}

# Served, but not an operation of the schema it serves.
NOT_IN_SCHEMA = {
    ("GET", "/api/v1/schema/"),
    ("GET", "/api/v1/ledger/tlog/checkpoint"),
    ("GET", "/api/v1/ledger/tlog/tile/{kind}/{rest}"),
    ("GET", "/api/v1/ledger/tlog/verifier-keys"),
    ("GET", "/api/v1/ledger/tlog/witness-policy"),
}


# ---- enumerating what is served --------------------------------------------------------------


def _walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p.callback


def served_operations() -> set[tuple[str, str]]:
    """Every (method, path template) the URL resolver serves under /api/v1/."""
    ops = set()
    for route, callback in _walk(get_resolver().url_patterns, "/"):
        template = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        if not template.startswith("/api/v1/"):
            continue
        view = getattr(callback, "view_class", None) or callback.cls
        for method in view.http_method_names:
            if method not in ("options", "head") and hasattr(view, method):
                ops.add((method.upper(), template))
    return ops


def _shape(path: str) -> str:
    # The schema names path parameters its own way ({pk} becomes {id}).
    return re.sub(r"\{\w+\}", "{}", path)


def schema_operations() -> set[tuple[str, str]]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {(m.upper(), _shape(p)) for p, ops in schema["paths"].items() for m in ops}


def test_every_endpoint_has_a_row_and_every_row_an_endpoint():
    served = served_operations()
    assert served - set(MATRIX) == set(), "endpoints without a row in MATRIX"
    assert set(MATRIX) - served == set(), "rows for endpoints that are not served"


def test_the_schema_documents_exactly_the_endpoints_in_the_matrix():
    documented = {(m, _shape(p)) for m, p in set(MATRIX) - NOT_IN_SCHEMA}
    assert schema_operations() == documented


def test_every_row_names_a_real_scope():
    allowed = {*ApiKey.Scope.values, PUBLIC, ANY_KEY}
    assert {row.scope for row in MATRIX.values()} <= allowed


# ---- the scene: one organization's objects of every kind -------------------------------------


@dataclass
class Scene:
    world: World
    batch: Batch
    hold: EscrowHold
    retirement: Retirement
    endpoint: WebhookEndpoint
    checkpoint_size: int
    auction: Auction
    clients: dict[str, APIClient] = field(default_factory=dict)
    listing: Listing | None = None
    purchase: Purchase | None = None
    document: ProjectDocument | None = None

    def url(self, path: str, row: Row) -> str:
        w = self.world
        ids = {
            "accounts": w.dev_account.pk,
            "methodologies": w.project.methodology_id,
            "projects": w.project.pk,
            "batches": self.batch.pk,
            "escrow-holds": self.hold.pk,
            "webhooks": self.endpoint.pk,
            "auctions": self.auction.pk,
            "organizations": w.buyer.pk,
            "listings": self.listing.pk if self.listing else 0,
            "purchases": self.purchase.pk if self.purchase else 0,
            "documents": self.document.pk if self.document else 0,
        }
        values = {
            "{certificate}": self.retirement.certificate,
            "{seq}": str(self.retirement.entry_seq),
            "{size}": str(self.checkpoint_size),
            "{bid}": "1",
            "{bidder}": str(w.buyer.pk),
            "{kind}": "0",  # tlog-tiles: the level-0 tile holding the first leaf
            "{rest}": "000.p/1",
        }
        if "{pk}" in path:
            # The collection names the id: /api/v1/<collection>/{pk}, or under /public/.
            parts = path.split("/")
            collection = parts[4] if parts[3] == "public" else parts[3]
            path = path.replace("{pk}", str(ids[collection]))
        for name, value in values.items():
            path = path.replace(name, value)
        assert "{" not in path, f"no value for a parameter of {path}: add it to Scene.url"
        return path + row.query


@pytest.fixture
def scene(world: World) -> Scene:
    """The developer's objects: a batch it holds, a transfer, an escrow hold, a retirement, a
    cancellation, a webhook endpoint; the registry's reversal; a checkpoint over all of it."""
    w = world
    b = w.issue(2_000_000)
    services.credit_transfer(
        actor=w.dev,
        batch=b.pk,
        sender=w.dev_account.pk,
        recipient=w.buyer_account.pk,
        quantity=5_000,
    )
    hold = services.escrow_hold(
        actor=w.dev, batch=b.pk, account=w.dev_account.pk, quantity=10_000, reference="lot 1"
    )
    retirement = services.credit_retire(
        actor=w.dev,
        batch=b.pk,
        account=w.dev_account.pk,
        quantity=1_000,
        beneficiary="Zhanjiang City",
        purpose="2023 operations",
        jurisdiction="CN-GD",
    )
    services.credit_cancel(
        actor=w.dev, batch=b.pk, account=w.dev_account.pk, quantity=1_000, reason="exported"
    )
    services.reversal_record(
        actor=factories.OPERATOR,
        project=w.project.pk,
        quantity=1_000,
        evidence_sha256=sha("survey"),
        description="Storm",
    )
    endpoint, _ = webhooks.webhook_endpoint_create(
        actor=w.dev, url="https://registry.example/hooks"
    )
    # A draft auction of the developer's (scheduling it escrows 10 t).
    now = dt.datetime.now(dt.UTC)
    auction = auction_services.auction_create(
        actor=w.dev,
        account=w.dev_account.pk,
        batch=b.pk,
        title="Seaweed sink",
        format="uniform",
        quantity=10_000,
        lot_kg=1_000,
        currency="CNY",
        tick=100,
        reserve=3_000,
        cap_bp=None,
        deposit_required=0,
        bid_guarantee=False,
        tie_rule="random_order",
        undersubscribed="settle",
        opens_at=now + dt.timedelta(hours=1),
        closes_at=now + dt.timedelta(hours=2),
    )
    # A listing of the developer's, 2 t of it taken by the buyer (a pending purchase).
    listing = listing_services.listing_create(
        actor=w.dev,
        account=w.dev_account.pk,
        batch=b.pk,
        lots=10,
        lot_kg=1_000,
        currency="CNY",
        price=10_600,
        opens_at=now,
        closes_at=now + dt.timedelta(hours=2),
    )
    purchase = listing_services.listing_take(actor=w.buy, listing=listing.pk, lots=2)
    checkpoint = services.ledger_checkpoint_issue()
    assert checkpoint is not None
    scene = Scene(w, b, hold, retirement, endpoint, checkpoint.size, auction)
    scene.listing, scene.purchase = listing, purchase
    scene.document = services.project_document_attach(
        actor=factories.OPERATOR,
        project=w.project.pk,
        kind="monitoring_report",
        title="Monitoring report",
        content=b"Mangrove plots surveyed\n",
        media_type="text/plain",
    )
    return scene


def call(client: APIClient, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    if method == "GET":
        return client.get(url)
    if method == "DELETE":
        return client.delete(url)
    if body is not None and "file" in body:
        return client.post(url, body, format="multipart")
    return getattr(client, method.lower())(url, body if body is not None else {}, format="json")


def items(response: Any) -> list[Any]:
    data = response.json()
    return data["results"] if isinstance(data, dict) else data


ROWS = sorted(MATRIX)


def _expect_as_outsider(response: Any, expected: str, what: str) -> None:
    if expected == NOT_FOUND:
        assert response.status_code == 404, (what, response.status_code, response.content[:300])
        assert response.json()["code"] == "not_found"
    elif expected == FORBIDDEN:
        assert response.status_code == 403, (what, response.status_code, response.content[:300])
        assert response.json()["code"] == "permission_denied"
    elif expected == HIDDEN:
        assert response.status_code == 200, (what, response.content[:300])
        assert items(response) == [], what
    elif expected == SHOWN:
        assert response.status_code == 200, (what, response.status_code, response.content[:300])


# ---- the checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROWS)
def test_anonymous_callers_get_401_except_on_public_endpoints(scene, method, path):
    row = MATRIX[(method, path)]
    r = call(APIClient(), method, scene.url(path, row), row.body(scene) if row.body else None)
    if row.scope == PUBLIC:
        assert r.status_code == 200, r.content[:300]
    else:
        assert r.status_code == 401, r.content[:300]
        assert r.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(("method", "path"), ROWS)
def test_a_key_with_one_scope_is_let_in_only_where_that_scope_suffices(
    scene, client_for, method, path
):
    row = MATRIX[(method, path)]
    url = scene.url(path, row)
    owner = getattr(scene.world, row.owner)
    for scope in ApiKey.Scope.values:
        # An empty body: a request let in is refused by validation, so nothing changes.
        r = call(client_for(owner, scope), method, url)
        if row.scope in (PUBLIC, ANY_KEY, scope):
            assert r.status_code not in (401, 403), (scope, r.status_code, r.content[:300])
        else:
            assert r.status_code == 403, (scope, r.status_code, r.content[:300])
            assert r.json()["code"] == "permission_denied"


@pytest.mark.parametrize(("method", "path"), ROWS)
def test_another_organizations_key_gets_404_for_its_objects_and_sees_none_of_its_rows(
    scene, client_for, ledger_length, method, path
):
    row = MATRIX[(method, path)]
    if row.stranger == OWN:
        pytest.skip("acts on the caller's own organization only")
    stranger = factories.organization(Role.BIDDER)
    before = ledger_length()
    r = call(
        client_for(stranger),
        method,
        scene.url(path, row),
        row.body(scene) if row.body else None,
    )
    _expect_as_outsider(r, row.stranger, f"{method} {path}")
    assert ledger_length() == before


@pytest.mark.parametrize(("method", "path"), ROWS)
def test_an_auditors_read_and_audit_key_reads_what_is_public_and_writes_nothing(
    scene, client_for, ledger_length, method, path
):
    row = MATRIX[(method, path)]
    auditor = factories.organization(Role.AUDITOR)
    client = client_for(auditor, "read", "audit")
    url = scene.url(path, row)
    before = ledger_length()
    if row.scope not in (PUBLIC, ANY_KEY, "read", "audit"):
        assert call(client, method, url, row.body(scene) if row.body else None).status_code == 403
    elif row.scope == ANY_KEY:
        # Let in, but each operation needs its own scope (see the bulk test below).
        assert call(client, method, url).status_code not in (401, 403)
    elif row.stranger == OWN:
        assert call(client, method, url).status_code not in (401, 403)
    else:  # an auditor is just another organization: public data and nothing of others'
        r = call(client, method, url, row.body(scene) if row.body else None)
        _expect_as_outsider(r, row.stranger, f"{method} {path}")
    assert ledger_length() == before


@pytest.mark.parametrize(("method", "path"), ROWS)
def test_an_operators_key_acts_for_every_organization(scene, client_for, method, path):
    row = MATRIX[(method, path)]
    expected = row.operator or row.stranger
    if row.stranger == OWN:
        pytest.skip("acts on the caller's own organization only")
    operator = factories.organization(Role.OPERATOR)
    r = call(
        client_for(operator),
        method,
        scene.url(path, row),
        row.body(scene) if row.body else None,
    )
    if expected in (NOT_FOUND, FORBIDDEN):  # someone else's object: the operator acts on it
        assert 200 <= r.status_code < 300, (r.status_code, r.content[:300])
    elif expected == HIDDEN and row.operator is None:  # someone else's rows: shown
        assert r.status_code == 200
        assert items(r) != []
    else:
        _expect_as_outsider(r, expected, f"{method} {path}")


def test_an_auditors_key_cannot_move_credits_through_bulk_either(scene, client_for):
    auditor = factories.organization(Role.AUDITOR)
    r = client_for(auditor, "read", "audit").post(
        "/api/v1/bulk", {"operations": [{"op": "transfer", **_transfer(scene)}]}, format="json"
    )
    assert r.status_code == 403


def test_an_expired_key_is_401_everywhere_a_key_is_needed(scene):
    _, secret = services.apikey_create(
        organization=scene.world.developer.pk,
        name="old",
        scopes=ApiKey.Scope.values,
        expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    for (method, path), row in MATRIX.items():
        if row.scope != PUBLIC:
            r = call(client, method, scene.url(path, row))
            assert r.status_code == 401, (method, path)
            assert r.json()["code"] == "authentication_failed"
