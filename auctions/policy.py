"""Who may see what of the auction house: the one place that says it (issue 15, section 4).

Two rules, by what a row holds:

* What is sealed or speaks for a bidder's demand (a bid, its receipts, a clock round bid, a
  paddle, which is who the bidder is until the reveal) is its bidder's alone, an operator's
  key included: nobody reads a bid before the close (docs/auctions.md §3). What the auction
  publishes (the book at the close, raises, rounds' aggregates, the result) is everyone's and
  is not read through here.
* What the operator decides on (an application, a deposit) is its bidder's and the
  operator's.

An actor that acts for no organization sees none of either. ``*_of(organization)`` is an
organization's own rows, whoever looks; ``*_visible_to(actor)`` what an actor may read; a
``*_visible_to(actor, row)`` answers for one row. The API, the portal and the selectors read
through these, and ``tests/test_policy.py`` fails if a reader filters these tables by
organization itself.
"""

from __future__ import annotations

from django.db.models import QuerySet

from ledger.actors import NO_ORGANIZATION, Actor

from .models import Application, Award, Bid, BidReceipt, ClockBid, Deposit, Paddle, TrusteeKey


def _owner(organization: int | None) -> int:
    return organization or NO_ORGANIZATION


# ---- the bidder's alone ----------------------------------------------------------------------


def bids_of(organization: int | None) -> QuerySet[Bid]:
    return Bid.objects.filter(bidder_id=_owner(organization))


def bids_visible_to(actor: Actor) -> QuerySet[Bid]:
    return bids_of(actor.organization_id)


def bid_visible_to(actor: Actor, bid: Bid) -> bool:
    return actor.organization_id is not None and bid.bidder_id == actor.organization_id


def receipts_of(organization: int | None) -> QuerySet[BidReceipt]:
    return BidReceipt.objects.filter(bid__bidder_id=_owner(organization))


def paddles_of(organization: int | None) -> QuerySet[Paddle]:
    return Paddle.objects.filter(bidder_id=_owner(organization))


def round_bids_of(organization: int | None) -> QuerySet[ClockBid]:
    return ClockBid.objects.filter(paddle__bidder_id=_owner(organization))


def round_bids_visible_to(actor: Actor) -> QuerySet[ClockBid]:
    return round_bids_of(actor.organization_id)


def awards_of(organization: int | None) -> QuerySet[Award]:
    return Award.objects.filter(bidder_id=_owner(organization))


def trustee_keys_of(organization: int | None) -> QuerySet[TrusteeKey]:
    """A trustee's keys, unused, assigned and released (an auction's assigned keys are public
    through its sealing, read by auction, not by organization)."""
    return TrusteeKey.objects.filter(organization_id=_owner(organization))


def trustee_keys_visible_to(actor: Actor) -> QuerySet[TrusteeKey]:
    return trustee_keys_of(actor.organization_id)


# ---- the bidder's and the operator's ---------------------------------------------------------


def applications_of(organization: int | None) -> QuerySet[Application]:
    return Application.objects.filter(bidder_id=_owner(organization))


def applications_visible_to(actor: Actor) -> QuerySet[Application]:
    if actor.is_operator:
        return Application.objects.all()
    return applications_of(actor.organization_id)


def deposits_of(organization: int | None) -> QuerySet[Deposit]:
    return Deposit.objects.filter(bidder_id=_owner(organization))


def deposits_visible_to(actor: Actor) -> QuerySet[Deposit]:
    return Deposit.objects.all() if actor.is_operator else deposits_of(actor.organization_id)
