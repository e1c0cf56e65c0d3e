"""Reads for the portal's pages. Every list fetches what its rows show in a fixed number of
queries (tests/portal assert the counts)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, Max, Prefetch, Q, QuerySet, Sum

from auctions import policy as auction_policy
from auctions import records, trustees
from auctions import selectors as auction_selectors
from auctions.core import result as results
from auctions.core import sealing
from auctions.models import (
    Application,
    Auction,
    Award,
    Bid,
    BidReceipt,
    ClockBid,
    ClockRound,
    Deposit,
    Paddle,
    Raise,
    stored,
)
from ledger import entry_types as ledger_entry_types
from ledger import policy as ledger_policy
from ledger import selectors as ledger_selectors
from ledger.core import merkle
from ledger.core.entry import decode_entry, entry_hash
from ledger.models import (
    Account,
    Batch,
    Checkpoint,
    LedgerEntry,
    LedgerHead,
    Organization,
    Project,
    Retirement,
)
from portal.names import local_name

PAGE = 50


# ---- public registry ---------------------------------------------------------------------


def supply_summary() -> dict[str, Any]:
    total = Batch.objects.aggregate(
        issued=Sum("issued"),
        retired=Sum("retired"),
        cancelled=Sum("cancelled"),
        batches=Count("pk"),
    )

    def by(field: str) -> list[dict[str, Any]]:
        return list(
            Batch.objects.values(field)
            .annotate(
                issued=Sum("issued"),
                retired=Sum("retired"),
                cancelled=Sum("cancelled"),
                batches=Count("pk"),
            )
            .order_by(field)
        )

    return {
        "total": {k: v or 0 for k, v in total.items()},
        "by_ecosystem": by("project__ecosystem"),
        "by_jurisdiction": by("project__jurisdiction"),
    }


def project(code: str) -> Project | None:
    return (
        Project.objects.select_related("methodology", "developer", "registry")
        .prefetch_related(Prefetch("batches", queryset=Batch.objects.order_by("monitoring_start")))
        .filter(code=code)
        .first()
    )


def retirements(*, after: int | None = None) -> QuerySet[Retirement]:
    qs = Retirement.objects.select_related("batch", "batch__project").order_by("-entry_seq")
    return qs.filter(entry_seq__lt=after) if after else qs


# ---- auctions ------------------------------------------------------------------------------


def auctions(
    *, ecosystem: str = "", vintage: int | None = None, format: str = "", closed: int = PAGE
) -> dict[str, list[Auction]]:
    """Open and upcoming auctions, all of them; the ``closed`` most recent others."""
    qs = auction_selectors.auction_list(
        ecosystem=ecosystem or None, vintage=vintage, format=format or None
    )
    State = Auction.State
    return {
        "open": with_clock_rounds(list(qs.filter(state=State.OPEN))),
        "upcoming": list(qs.filter(state=State.SCHEDULED)),
        "closed": list(
            qs.exclude(state__in=[State.OPEN, State.SCHEDULED, State.DRAFT]).order_by("-pk")[
                :closed
            ]
        )
        if closed
        else [],
    }


def auctions_open(limit: int = 10) -> list[Auction]:
    return with_clock_rounds(list(auction_selectors.auction_list(state=Auction.State.OPEN)[:limit]))


def my_bids(auction: Auction, organization: Organization | None) -> list[Bid]:
    if organization is None:
        return []
    bids = list(
        auction_policy.bids_of(organization.pk)
        .filter(auction=auction)
        .defer("ciphertext", "opened")
        .prefetch_related(Prefetch("receipts", queryset=BidReceipt.objects.order_by("pk")))
        .order_by("pk")
    )
    for b in bids:
        b.auction = auction  # the page has it: no query per bid
    return bids


def my_deposit(auction: Auction, organization: Organization | None) -> Deposit | None:
    if organization is None:
        return None
    return auction_policy.deposits_of(organization.pk).filter(auction=auction).first()


def my_application(auction: Auction, organization: Organization | None) -> Application | None:
    if organization is None:
        return None
    return auction_policy.applications_of(organization.pk).filter(auction=auction).first()


def holding_accounts(organization: Organization | None) -> list[Account]:
    if organization is None:
        return []
    return list(
        ledger_policy.accounts_of(organization.pk).filter(kind=Account.Kind.HOLDING).order_by("pk")
    )


@dataclass(frozen=True)
class Trustee:
    position: int
    name: str
    public_key: str  # base64
    released_seq: int | None  # the auction.key_release entry, once released


@dataclass(frozen=True)
class SealingView:
    """Who can open an auction's bids, as its page says it, and what its bid form seals with
    (``client``: the API's ``sealing`` object, which seal.js's sealBidForAuction takes)."""

    mode: str
    client: dict[str, Any]
    threshold: int | None
    trustees: list[Trustee]
    release_by: datetime | None

    @property
    def client_json(self) -> str:
        """``client`` for the bid form's ``data-sealing`` (an attribute, not a script block)."""
        return json.dumps(self.client, cls=DjangoJSONEncoder, separators=(",", ":"))

    @property
    def names(self) -> str:
        return ", ".join(t.name for t in self.trustees)

    @property
    def released(self) -> int:
        return sum(t.released_seq is not None for t in self.trustees)


def auction_sealing(a: Auction) -> SealingView | None:
    """None while a draft (no keys yet)."""
    keys = auction_selectors.trustee_keys(a)
    client = auction_selectors.auction_sealing(a, keys)
    if client is None:
        return None
    return SealingView(
        mode=a.sealing,
        client=client,
        threshold=a.threshold,
        trustees=[
            Trustee(
                position=k.position or 0,
                name=local_name(k.organization),
                public_key=k.public_key_b64,
                released_seq=k.released_seq if k.private_key is not None else None,
            )
            for k in keys
        ],
        release_by=a.release_by,
    )


@dataclass(frozen=True)
class CurvePoint:
    price: int  # minor units per tonne
    demand: int  # cumulative lots at this price or higher


def demand_curve(a: Auction) -> list[CurvePoint]:
    """Cumulative counted demand (after caps and deposits), highest price first: the step
    curve the clearing walks down until it meets the supply."""
    if not a.result:
        return []
    at: dict[int, int] = {}
    for bidder in a.result["bidders"]:
        for price, lots in bidder["counted"]:
            at[price] = at.get(price, 0) + lots
    points, total = [], 0
    for price in sorted(at, reverse=True):
        total += at[price]
        points.append(CurvePoint(price, total))
    return points


def my_allocation(a: Auction, organization: Organization | None) -> dict[str, Any] | None:
    """What the result says of this bidder: its combined, trimmed schedule, its award, and the
    tie draw if it was in the tie at the clearing price."""
    if organization is None or not a.result:
        return None
    mine = next((b for b in a.result["bidders"] if b["bidder"] == organization.pk), None)
    if mine is None:
        return None
    outcome = a.result["outcome"]
    tie = outcome.get("tie")
    combined_id = next(
        (w["bid"] for w in outcome["awards"] if w["bidder"] == organization.pk), None
    )
    in_tie = None
    if tie is not None:
        ids = set(mine["bids"])
        tied = [b for b in tie["bids"] if b in ids or b == combined_id]
        if tied:
            in_tie = {
                "price": tie["price"],
                "remainder": tie["remainder"],
                "tied": len(tie["bids"]),
                "position": tie["order"].index(tied[0]) + 1 if tied[0] in tie["order"] else None,
                "base": next((x["lots"] for x in tie["base"] if x["bid"] == tied[0]), None),
                "rule": a.tie_rule,
            }
    # The summary on the auction row names this bidder's bids; what each sealed is in the
    # whole result, which only its ledger entry keeps (one read).
    full = auction_selectors.auction_result(a) or {}
    mine_ids = set(mine["bids"])
    sealed = [b for b in full.get("bids", []) if b["bid"] in mine_ids]
    return {
        "summary": mine,
        "bids": sealed,
        "tie": in_tie,
        "clearing_price": outcome["clearing_price"],
    }


BOOK_PAGE = 200
RECOMPUTE_TTL = 24 * 3600


def recompute_cached(a: Auction) -> dict[str, Any]:
    """``recompute``, once per published result: reopening 100,000 bids takes seconds, and
    what it finds cannot change while the result (named by its hash) is the same."""
    if not a.result_sha256:
        return recompute(a)
    key = f"auction-recompute:{a.pk}:{a.result_sha256}"
    found = cache.get(key)
    if found is None:
        found = recompute(a)
        cache.set(key, found, RECOMPUTE_TTL)
    return found


def book(a: Auction) -> QuerySet[Bid]:
    return Bid.objects.filter(auction=a).defer("ciphertext", "opened").order_by("pk")


def recompute(a: Auction) -> dict[str, Any]:
    """The auditor's check of one auction: reopen every counted bid with the published key,
    re-run the clearing with the close entry's seed, and compare with the published result
    (what ``ledger_verify`` does for every auction, here for one)."""
    if a.result_seq is None or (a.private_key is None and not a.by_trustees):
        return {"state": "not_cleared"}
    published = auction_selectors.auction_result(a)
    assert published is not None
    key = None
    released = None
    if a.by_trustees:
        # The keys the clearing opened with: the first k released, in ledger order (their
        # match with the registered public keys is checked at release and by ledger_verify).
        released = trustees.opening_keys(a)
        if released is None:
            return {"state": "mismatch", "detail": "fewer trustee keys released than the threshold"}
    else:
        private = stored(a.private_key, "published key")
        key = sealing.load_private_key(private)
        if sealing.public_key_of(private) != stored(a.public_key, "public key"):
            return {"state": "mismatch", "detail": "the published key is not the auction's"}
    # Deposits are recorded only before the close, and none is released before the result:
    # every deposit's amount is what was held when the auction was cleared.
    held = dict(Deposit.objects.filter(auction=a).values_list("bidder_id", "amount"))
    opener = sealing.Opener(private_key=key, released=released, trustees=len(a.trustees))
    counted = [row["bid"] for row in published["bids"]]
    bids = {b.pk: b for b in Bid.objects.filter(pk__in=counted)}
    book_rows = results.assemble_book(
        (
            results.Counted(i, bids[i].bidder_id, bids[i].account_id, bids[i].commitment)
            for i in counted
        ),
        deposits=held,
        opening=lambda c: opener.for_book(
            bytes(bids[c.bid].ciphertext),
            origin=settings.LEDGER_ORIGIN,
            auction=a.pk,
            bidder=c.bidder,
        ),
    )

    rebuilt = results.build_result(
        record=records.auction_rules(a),
        book=book_rows,
        seed=stored(a.seed, "seed"),
        root=stored(a.book_root, "book root"),
    )
    size, root = results.book_root(bytes.fromhex(bids[i].commitment) for i in counted)
    same = rebuilt == published and root == stored(a.book_root, "book root")
    return {
        "state": "match" if same else "mismatch",
        "result": published,
        "sha256": results.result_sha256(published),
        "root": root.hex(),
        "size": size,
    }


# ---- a bidder's dashboard ------------------------------------------------------------------


def dashboard(organization: Organization) -> dict[str, Any]:
    holdings = list(
        ledger_policy.holdings_of(organization.pk)
        .exclude(tradable=0, escrowed=0)
        .select_related("account", "batch", "batch__project")
        .order_by("batch__serial", "account_id")
    )
    deposits = list(
        auction_policy.deposits_of(organization.pk).select_related("auction").order_by("-pk")
    )
    bids = list(
        auction_policy.bids_of(organization.pk)
        .defer("ciphertext", "opened")
        .select_related("auction")
        .prefetch_related(Prefetch("receipts", queryset=BidReceipt.objects.order_by("pk")))
        .order_by("-pk")[:PAGE]
    )
    awards = list(
        auction_policy.awards_of(organization.pk)
        .select_related("auction", "account")
        .order_by("-pk")
    )
    held = {d.auction_id: d.amount for d in deposits if d.state == Deposit.State.HELD}
    for w in awards:
        # What is still to pay: the price less the deposit held, which payment applies; nothing
        # once the award is delivered (paid) or defaulted (the deposit forfeited instead).
        # An attribute for the template only, on this page's own instances.
        w.outstanding = (  # type: ignore[attr-defined]
            max(0, w.amount_due - held.get(w.auction_id, 0))
            if w.state == Award.State.PENDING
            else 0
        )
    return {"holdings": holdings, "deposits": deposits, "bids": bids, "awards": awards}


# ---- the ledger, for auditors --------------------------------------------------------------

_PARTIES = ("account", "from", "to", "holder", "buffer_account", "recipient")


def _touches(data: Any, account: int | None, batch: int | None) -> bool:
    """Whether an entry's data names this account (as a party) and this batch."""
    found_account, found_batch = account is None, batch is None
    stack = [data]
    while stack and not (found_account and found_batch):
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                # A party or batch is named by its id, or by its record (with an "id").
                named = value.get("id") if isinstance(value, dict) else value
                if key in _PARTIES and named == account:
                    found_account = True
                elif key == "batch" and named == batch:
                    found_batch = True
                if isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found_account and found_batch


SCAN = 5000


def seq_at(time: str) -> int:
    """The first sequence whose entry's time is at or after ``time`` (an RFC 3339 UTC string;
    the ledger's size if none is). Entries are appended in time order under the head lock, so
    this is a binary search: some twenty single-row reads for a million entries."""
    lo, hi = 0, ledger_size()
    while lo < hi:
        mid = (lo + hi) // 2
        body = LedgerEntry.objects.filter(seq=mid).values_list("body", flat=True).first()
        if body is None or decode_entry(bytes(body)).time >= time:
            hi = mid
        else:
            lo = mid + 1
    return lo


def ledger_page(
    *,
    type: str = "",
    account: int | None = None,
    batch: int | None = None,
    since: str = "",
    until: str = "",
    before: int | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first: up to PAGE entries matching the filters among at most SCAN entries read
    (entries below ``before``, at or after ``since``, before ``until``); and where to go on
    (None when nothing further back can match)."""
    qs = LedgerEntry.objects.order_by("-seq")
    if type:
        qs = qs.filter(type=type)
    if before is not None:
        qs = qs.filter(seq__lt=before)
    if since:
        qs = qs.filter(seq__gte=seq_at(since))
    if until:
        qs = qs.filter(seq__lt=seq_at(until))
    rows = list(qs.values_list("seq", "body", "type")[:SCAN])
    found: list[dict[str, Any]] = []
    for seq, body, kind in rows:
        e = decode_entry(bytes(body))
        if (account is not None or batch is not None) and not _touches(e.data, account, batch):
            continue
        found.append({"seq": seq, "type": kind, "time": e.time, "actor": e.actor, "data": e.data})
        if len(found) == PAGE:
            return found, seq
    # The scan budget spent: go on below the last entry read; else the start was reached.
    return found, (rows[-1][0] if len(rows) == SCAN else None)


def entry_detail(seq: int) -> dict[str, Any] | None:
    row = LedgerEntry.objects.filter(seq=seq).values_list("body", "type").first()
    if row is None:
        return None
    body = bytes(row[0])
    e = decode_entry(body)
    checkpoint = Checkpoint.objects.filter(size__gt=seq).order_by("-size").first()
    proof = None
    if checkpoint is not None:
        try:
            hashes = ledger_selectors.inclusion_proof(seq, checkpoint.size)
        except LookupError:
            hashes = None
        if hashes is not None:
            proof = {
                "size": checkpoint.size,
                "hashes": [base64.b64encode(h).decode() for h in hashes],
                "root": base64.b64encode(bytes(checkpoint.root)).decode(),
                "note": checkpoint.note,
                "ok": merkle.root_from_inclusion_proof(
                    merkle.leaf_hash(body), seq, checkpoint.size, hashes
                )
                == bytes(checkpoint.root),
            }
    return {
        "seq": seq,
        "type": row[1],
        "entry": e,
        "canonical": body.decode(),
        "entry_sha256": entry_hash(body).hex(),
        "leaf_hash": merkle.leaf_hash(body).hex(),
        "size": len(body),
        "prev_seq": seq - 1 if seq else None,
        "next_seq": seq + 1 if LedgerEntry.objects.filter(seq=seq + 1).exists() else None,
        "proof": proof,
    }


def checkpoints(*, before: int | None = None) -> list[Checkpoint]:
    qs = Checkpoint.objects.prefetch_related("cosignatures").order_by("-size")
    if before is not None:
        qs = qs.filter(size__lt=before)
    return list(qs[:PAGE])


def ledger_size() -> int:
    head = LedgerHead.objects.filter(pk=1).first()
    return head.size if head else 0


def entry_types() -> list[str]:
    """Every type the ledger can hold (from the replay's handlers, not a scan of the ledger)."""
    return sorted(ledger_entry_types.all_types())


# ---- the English auction's room ----------------------------------------------------------

ROOM_ROWS = 100  # the bid history a room page shows; the API lists every bid


@dataclass(frozen=True)
class RoomBid:
    seq: int
    paddle: str  # the pseudonym's first eight hex digits (Paddle.label)
    price: int
    time: datetime


def room_bids(a: Auction, *, after: int = 0, limit: int = ROOM_ROWS) -> list[RoomBid]:
    """An English auction's accepted bids after ledger sequence ``after``, the newest
    ``limit`` of them, newest first."""
    rows = (
        Raise.objects.filter(auction=a, entry_seq__gt=after)
        .order_by("-entry_seq")
        .values_list("entry_seq", "paddle__pseudonym", "price", "time")[:limit]
    )
    return [RoomBid(seq, pseudonym[:8], price, time) for seq, pseudonym, price, time in rows]


def room_history(a: Auction) -> list[tuple[datetime, int]]:
    """Every accepted bid's (time, price), in ledger order: the room's chart."""
    return list(Raise.objects.filter(auction=a).order_by("entry_seq").values_list("time", "price"))


def room_count(a: Auction) -> tuple[int, int]:
    """How many bids an English auction took, and the last one's ledger sequence (0: none)."""
    got = Raise.objects.filter(auction=a).aggregate(n=Count("pk"), last=Max("entry_seq"))
    return got["n"], got["last"] or 0


def room_winner(a: Auction) -> tuple[str, str | None] | None:
    """The standing bid's paddle label, and its bidder's name once ``auction.reveal`` named
    it (None before); None if nobody bid."""
    top = (
        Raise.objects.filter(auction=a)
        .order_by("-entry_seq")
        .select_related("paddle__bidder")
        .first()
    )
    if top is None:
        return None
    revealed = a.revealed_seq is not None
    return top.paddle.label, local_name(top.paddle.bidder) if revealed else None


@dataclass(frozen=True)
class RoomPosition:
    paddle: str | None  # the label, once the bidder has bid here
    position: str  # "leading", "outbid" or "none"


def room_position(a: Auction, organization: Organization | None) -> RoomPosition | None:
    """Where a bidder stands in an English auction: its paddle, and whether its bid is the
    standing one. For the bidder's own eyes only: the paddle is who it is until the end."""
    if organization is None:
        return None
    mine = auction_policy.paddles_of(organization.pk).filter(auction=a).first()
    if mine is None:
        return RoomPosition(None, "none")
    top = Raise.objects.filter(auction=a).order_by("-entry_seq").values_list("paddle", flat=True)
    return RoomPosition(mine.label, "leading" if top.first() == mine.pk else "outbid")


# ---- the clock auction's room ------------------------------------------------------------


def clock_rounds(a: Auction) -> list[ClockRound]:
    """A clock auction's rounds, first to last (a few dozen at most: one every round_s)."""
    return list(ClockRound.objects.filter(auction=a).order_by("number"))


def clock_version(rounds: list[ClockRound]) -> int:
    """The ledger sequence of the rounds' latest change (a round opened or closed); 0 if none.
    The room's poll asks for the rounds' table and chart again only past it."""
    if not rounds:
        return 0
    last = rounds[-1]
    return max(last.open_seq, last.close_seq or 0)


@dataclass(frozen=True)
class ClockPosition:
    """Where a bidder stands in a clock auction, for its own eyes only (its demand is sealed
    from everyone else until the end)."""

    paddle: str | None  # the label, once it has bid here
    round: int | None  # the current round
    previous: int | None  # its demand in the round before (None in round 1)
    bid: ClockBid | None  # its bid in the current round (latest version), if any
    most: int  # the most lots it may demand now (the activity rule; round 1: eligibility)

    @property
    def active(self) -> bool:
        """It may still demand lots: in round 1, or with a demand in the round before."""
        return self.most > 0

    @property
    def code(self) -> str:
        """``bid`` (a demand this round), ``missing`` (active, none yet this round: it falls
        to 0 at the close), ``none`` (round 1, none yet) or ``out`` (no longer active)."""
        if not self.active:
            return "out"
        if self.bid is not None:
            return "bid"
        return "none" if self.previous is None else "missing"


def clock_position(
    a: Auction, organization: Organization | None, rounds: list[ClockRound], eligible: int
) -> ClockPosition | None:
    """``eligible``: round 1's most lots per bidder (``clock.rules(a).eligible()``)."""
    if organization is None or not rounds:
        return None
    current = rounds[-1]
    paddle = auction_policy.paddles_of(organization.pk).filter(auction=a).first()
    mine: dict[int, ClockBid] = {}
    if paddle is not None:
        for b in ClockBid.objects.filter(
            paddle=paddle, round__number__gte=current.number - 1
        ).select_related("round"):
            mine[b.round.number] = b
    if current.number == 1:
        previous, most = None, eligible
    else:
        before = mine.get(current.number - 1)
        previous = before.lots if before is not None else 0
        most = previous
    return ClockPosition(
        paddle=paddle.label if paddle else None,
        round=current.number,
        previous=previous,
        bid=mine.get(current.number),
        most=most,
    )


@dataclass(frozen=True)
class ClockWinner:
    paddle: str
    name: str | None  # once auction.reveal named the paddles
    organization: int
    lots: int
    kg: int
    amount: int  # minor units


def clock_result(a: Auction) -> dict[str, Any] | None:
    """A cleared clock auction's outcome and its allocation per winner, by paddle (and name
    after the reveal); None before the result."""
    result = auction_selectors.auction_result(a)
    if result is None:
        return None
    rows = result.get("bidders", [])
    ids = [r["bidder"] for r in rows]
    paddles = dict(
        Paddle.objects.filter(auction=a, bidder_id__in=ids).values_list("bidder_id", "pseudonym")
    )
    revealed = a.revealed_seq is not None
    names = (
        {pk: local_name(o) for pk, o in Organization.objects.in_bulk(ids).items()}
        if revealed
        else {}
    )
    return {
        "outcome": result["outcome"],
        "winners": [
            ClockWinner(
                paddle=paddles.get(r["bidder"], "")[:8],
                name=names.get(r["bidder"]),
                organization=r["bidder"],
                lots=r["awarded_lots"],
                kg=r["awarded_lots"] * a.lot_kg,
                amount=r["amount"],
            )
            for r in rows
        ],
    }


def with_clock_rounds(auctions: list[Auction]) -> list[Auction]:
    """Gives each open clock auction of a list its current round (``clock_round``) in one
    query: the cards show the round and its price."""
    open_clock = {a.pk: a for a in auctions if a.is_clock and a.state == Auction.State.OPEN}
    if open_clock:
        latest = (
            ClockRound.objects.filter(auction_id__in=open_clock)
            .values("auction_id")
            .annotate(n=Max("number"))
        )
        wanted = Q()
        for row in latest:
            wanted |= Q(auction_id=row["auction_id"], number=row["n"])
        for r in ClockRound.objects.filter(wanted):
            open_clock[r.auction_id].clock_round = r  # type: ignore[attr-defined]
    return auctions
