"""Who may see what has one home per app: ``ledger/policy.py``, ``auctions/policy.py``,
``listings/policy.py`` (issue 15, section 4). Each function is checked here directly (an
operator sees every row, an organization its own, a stranger and an actor of no organization
none), and a reader (an API, a selector, a portal page, an admin) that filters those tables by
organization itself fails the guard at the end."""

from __future__ import annotations

import ast
import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.db.models import QuerySet
from django.utils import timezone

from auctions import clock, onboarding, trustees
from auctions import policy as auction_policy
from auctions import services as auction_services
from auctions.models import Auction, Award, Bid, BidReceipt, ClockBid, Deposit, Paddle
from ledger import policy as ledger_policy
from ledger import services, webhooks
from ledger.actors import Actor
from ledger.models import Account, Cancellation, EscrowHold, Holding, Retirement, Role
from listings import policy as listing_policy
from listings.models import Purchase
from tests import factories
from tests.auctions.conftest import TONNE, Market
from tests.listings.conftest import Board

ROOT = Path(__file__).resolve().parents[1]
OPERATOR = factories.OPERATOR
NOBODY = Actor("user:0", None)  # signed in, acting for no organization


def _ids(qs: QuerySet[Any]) -> set[int]:
    return set(qs.values_list("pk", flat=True))


def _check(
    visible_to: Callable[[Actor], QuerySet[Any]],
    mine: QuerySet[Any],
    owner: Actor,
    stranger: Actor,
    *,
    operator_sees_all: bool = True,
) -> None:
    """``mine``: the owner's rows (at least one), read without the policy."""
    owned = _ids(mine)
    assert owned, "the scene must give the owner a row"
    assert _ids(visible_to(owner)) == owned
    assert _ids(visible_to(stranger)) == set()
    assert _ids(visible_to(NOBODY)) == set()
    everything = _ids(mine.model.objects.all())
    assert everything > owned, "the scene must give someone else a row too"
    if operator_sees_all:
        assert _ids(visible_to(OPERATOR)) == everything
    else:
        assert _ids(visible_to(OPERATOR)) == set()


# ---- ledger ----------------------------------------------------------------------------------


@pytest.fixture
def registry(db: None) -> factories.World:
    """The developer's rows and, for each table, someone else's (the buyer's)."""
    w = factories.World()
    b = w.issue(2_000_000)
    services.credit_transfer(
        actor=w.dev, batch=b.pk, sender=w.dev_account.pk, recipient=w.buyer_account.pk, quantity=50
    )
    for who, account in ((w.dev, w.dev_account), (w.buy, w.buyer_account)):
        services.escrow_hold(
            actor=who, batch=b.pk, account=account.pk, quantity=10, reference=f"lot {who.label}"
        )
        services.credit_retire(
            actor=who,
            batch=b.pk,
            account=account.pk,
            quantity=5,
            beneficiary="Zhanjiang City",
            purpose="2023 operations",
            jurisdiction="CN-GD",
        )
        services.credit_cancel(
            actor=who, batch=b.pk, account=account.pk, quantity=5, reason="exported"
        )
        webhooks.webhook_endpoint_create(actor=who, url="https://registry.example/hooks")
    return w


def test_each_ledger_policy_shows_an_operator_all_an_owner_its_own_and_a_stranger_none(registry):
    w = registry
    stranger = factories.actor_for(factories.organization(Role.BIDDER))
    mine = w.developer.pk
    _check(
        ledger_policy.accounts_visible_to,
        Account.objects.filter(organization=mine),
        w.dev,
        stranger,
    )
    _check(
        ledger_policy.holdings_visible_to,
        Holding.objects.filter(account=w.dev_account),
        w.dev,
        stranger,
    )
    for fn, model in (
        (ledger_policy.escrow_holds_visible_to, EscrowHold),
        (ledger_policy.retirements_visible_to, Retirement),
        (ledger_policy.cancellations_visible_to, Cancellation),
    ):
        _check(fn, model.objects.filter(account=w.dev_account), w.dev, stranger)
    assert _ids(ledger_policy.accounts_of(mine)) == _ids(w.developer.accounts.all())
    assert _ids(ledger_policy.holdings_of(None)) == set()
    assert ledger_policy.account_ids_visible_to(OPERATOR) is None  # every account
    assert ledger_policy.account_ids_visible_to(w.dev) == {w.dev_account.pk}
    assert ledger_policy.account_ids_visible_to(stranger) == set()


def test_webhook_endpoints_are_listed_to_their_organization_and_reached_by_an_operator(registry):
    w = registry
    stranger = factories.actor_for(factories.organization(Role.BIDDER))
    (endpoint,) = w.developer.webhook_endpoints.all()
    assert list(ledger_policy.webhook_endpoints_of(w.dev)) == [endpoint]
    assert not ledger_policy.webhook_endpoints_of(stranger).exists()
    assert not ledger_policy.webhook_endpoints_of(OPERATOR).exists()  # its own: none
    assert ledger_policy.webhook_endpoint_visible_to(w.dev, endpoint)
    assert ledger_policy.webhook_endpoint_visible_to(OPERATOR, endpoint)
    assert not ledger_policy.webhook_endpoint_visible_to(stranger, endpoint)
    webhooks.webhook_endpoint_deactivate(actor=w.dev, endpoint=endpoint.pk)
    endpoint.refresh_from_db()
    assert not ledger_policy.webhook_endpoint_visible_to(w.dev, endpoint)
    assert not ledger_policy.webhook_endpoint_visible_to(OPERATOR, endpoint)
    assert not ledger_policy.webhook_endpoints_of(w.dev).exists()


# ---- auctions --------------------------------------------------------------------------------


def _settled_clock_auction(m: Market) -> Auction:
    """Both bidders demand 10 of 100 lots in round 1: undersubscribed, it settles at once."""
    a = m.auction(
        format="clock",
        quantity=100 * TONNE,
        lot_kg=TONNE,
        tick=100,
        reserve=3000,
        increments=[[0, 500]],
        round_s=1,
        deposit_required=0,
        closes_in=0.6,
    )
    for org in m.bidders[:2]:
        clock.clock_bid(actor=m.actor(org), auction=a.pk, lots=10, exit_price=None)
    a.refresh_from_db()
    delay = (a.bidding_ends_at - timezone.now()).total_seconds()
    time.sleep(max(0.0, delay) + 0.01)
    assert auction_services.auction_close(auction=a.pk)
    assert auction_services.auction_clear(auction=a.pk)
    assert auction_services.auction_settle(auction=a.pk)
    a.refresh_from_db()
    return a


def test_each_auction_policy_keeps_sealed_rows_to_their_bidder_and_shows_decisions_to_the_operator(
    db,
):
    m = Market(bidders=3)
    owner_org, other, stranger_org = m.bidders
    owner, stranger = m.actor(owner_org), m.actor(stranger_org)
    a = m.auction(closes_in=60)
    for org in (owner_org, other):
        m.bid(a, org, [(5000, 1)])
        m.deposit(a, org, 100)
        onboarding.application_submit(actor=m.actor(org), auction=a.pk)
    settled = _settled_clock_auction(m)
    assert settled.state == Auction.State.SETTLED

    # A bid, its receipts, a paddle, a round bid, an award: the bidder's alone.
    _check(
        auction_policy.bids_visible_to,
        Bid.objects.filter(bidder=owner_org),
        owner,
        stranger,
        operator_sees_all=False,
    )
    _check(
        auction_policy.round_bids_visible_to,
        ClockBid.objects.filter(paddle__bidder=owner_org),
        owner,
        stranger,
        operator_sees_all=False,
    )
    for of, model, mine in (
        (auction_policy.receipts_of, BidReceipt, BidReceipt.objects.filter(bid__bidder=owner_org)),
        (auction_policy.paddles_of, Paddle, Paddle.objects.filter(bidder=owner_org)),
        (auction_policy.awards_of, Award, Award.objects.filter(bidder=owner_org)),
    ):
        assert _ids(mine), model
        assert _ids(of(owner_org.pk)) == _ids(mine)
        assert _ids(of(stranger_org.pk)) == set()
        assert _ids(of(None)) == set()
        assert _ids(model.objects.all()) > _ids(mine)
    bid = Bid.objects.filter(bidder=owner_org).first()
    assert auction_policy.bid_visible_to(owner, bid)
    assert not auction_policy.bid_visible_to(stranger, bid)
    assert not auction_policy.bid_visible_to(OPERATOR, bid)  # sealed from the operator too
    assert not auction_policy.bid_visible_to(NOBODY, bid)

    # A deposit, an application: the bidder's and the operator's.
    _check(
        auction_policy.deposits_visible_to,
        Deposit.objects.filter(bidder=owner_org),
        owner,
        stranger,
    )
    _check(
        auction_policy.applications_visible_to,
        a.applications.filter(bidder=owner_org),
        owner,
        stranger,
    )


def _public_key() -> str:
    raw = X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def test_a_trustee_sees_its_own_keys_only(db):
    mine, theirs = (factories.organization(Role.TRUSTEE) for _ in range(2))
    for org in (mine, theirs):
        trustees.trustee_keys_register(actor=factories.actor_for(org), public_keys=[_public_key()])
    owner = factories.actor_for(mine)
    stranger = factories.actor_for(factories.organization(Role.TRUSTEE))
    _check(
        auction_policy.trustee_keys_visible_to,
        mine.trustee_keys.all(),
        owner,
        stranger,
        operator_sees_all=False,
    )


# ---- listings --------------------------------------------------------------------------------


def test_a_purchase_is_seen_by_its_buyer_its_seller_and_the_operator(db):
    board = Board(buyers=3)
    buyer, other, stranger_org = board.buyers
    listing = board.listing()
    for org in (buyer, other):
        board.take(listing, org, 1, account=board.accounts[org.pk].pk)
    stranger = board.actor(stranger_org)
    _check(
        listing_policy.purchases_visible_to,
        Purchase.objects.filter(buyer=buyer),
        board.actor(buyer),
        stranger,
    )
    # The seller sees every purchase of its listings, and buys none of them.
    assert _ids(listing_policy.purchases_visible_to(board.sell)) == _ids(Purchase.objects.all())
    assert _ids(listing_policy.purchases_of(board.seller.pk)) == set()
    assert _ids(listing_policy.purchases_of(buyer.pk)) == _ids(buyer.purchases.all())


# ---- the guard: nothing else reads these tables by organization ------------------------------

_POLICIES = ("ledger/policy.py", "auctions/policy.py", "listings/policy.py")

# Lookups that scope a query to an organization (after the last "__", lookup operators such as
# "in" are dropped and "_id" is ignored): the owner columns of the policies' tables, and a
# purchase's seller, which is its listing's.
_OWNER_FIELDS = {"organization", "bidder", "buyer"}
_OPERATORS = {"in", "exact", "isnull"}
# An organization's reverse relations to those tables (``organization.accounts``).
_REVERSE = {
    "accounts",
    "applications",
    "awards",
    "bids",
    "deposits",
    "paddles",
    "purchases",
    "trustee_keys",
    "webhook_endpoints",
}
_ORG_NAMES = {"org", "organization", "bidder", "buyer"}

# Stated exceptions, by file and what it does (not by line number, so an edit nearby does not
# move them): each reads public data by organization, which is no one's visibility rule.
ALLOWED = {
    # clock_result: the paddles of the winners the published result names (public).
    ("portal/selectors.py", "filter(bidder_id__in=...)"),
}


def _readers() -> Iterator[Path]:
    """The modules that read for someone: the APIs, the selectors, the views, the admin and
    every module of the portal. Services check what an actor may do (``may_act_for``), not
    what it may see."""
    for folder in ("ledger", "auctions", "listings", "portal"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts or str(relative) in _POLICIES:
                continue
            name = path.name
            if (
                folder == "portal"
                or relative.parts[:2] == ("ledger", "apis")
                or name.endswith("apis.py")
                or name in ("selectors.py", "views.py")
                or name.startswith("admin")
            ):
                yield path


def _owner_lookup(keyword: str) -> bool:
    parts = keyword.split("__")
    while parts and parts[-1] in _OPERATORS:
        parts.pop()
    parts = [p.removesuffix("_id") for p in parts]
    return bool(_OWNER_FIELDS & set(parts)) or parts[-2:] == ["listing", "seller"]


def scoped_by_organization(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Where a module filters by an owner column, compares a row's owner with someone, or
    follows an organization's reverse relation to one of the policies' tables."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else None
            )
            if name in ("filter", "exclude", "get", "Q"):
                for kw in node.keywords:
                    if kw.arg is not None and _owner_lookup(kw.arg):
                        yield node.lineno, f"{name}({kw.arg}=...)"
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Constant) and s.value is None for s in sides):
                continue  # "acts for no organization", not whose row it is
            for side in sides:
                if isinstance(side, ast.Attribute) and side.attr in (
                    "bidder_id",
                    "buyer_id",
                    "organization_id",
                ):
                    yield node.lineno, f"compares .{side.attr}"
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in _REVERSE
            and isinstance(node.value, ast.Name)
            and node.value.id in _ORG_NAMES
        ):
            yield node.lineno, f"{node.value.id}.{node.attr}"


def test_the_guard_finds_a_reader_that_filters_by_organization_itself():
    source = """
def my_deposits(org):
    return Deposit.objects.filter(auction=a, bidder=org)
def my_purchases(actor):
    return Purchase.objects.filter(Q(buyer_id=1) | Q(listing__seller_id__in=[1]))
def mine(found, actor):
    return found.bidder_id == actor.organization_id
def accounts(organization):
    return organization.accounts.all()
def fine(actor, a):
    return actor.organization_id is None or Auction.objects.filter(seller_id=a)
"""
    found = [what for _, what in scoped_by_organization(ast.parse(source))]
    assert sorted(found) == sorted(
        [
            "filter(bidder=...)",
            "Q(buyer_id=...)",
            "Q(listing__seller_id__in=...)",
            "compares .bidder_id",
            "compares .organization_id",
            "organization.accounts",
        ]
    )


def test_no_reader_outside_the_policy_modules_filters_by_organization():
    found = [
        (str(path.relative_to(ROOT)), line, what)
        for path in _readers()
        for line, what in scoped_by_organization(ast.parse(path.read_text(), str(path)))
    ]
    offenders = [f"{f}:{line}: {what}" for f, line, what in found if (f, what) not in ALLOWED]
    assert offenders == []
    # An exception nobody needs any more goes too.
    assert {(f, what) for f, _, what in found} >= ALLOWED
