"""Sealed bids: submitted, amended and withdrawn while the auction is open, each version with
its entry and a signed receipt. (An English auction's raises and a clock auction's round bids
are ``english.py``'s and ``clock.py``'s.)

The intake is the hot path: its rows go in by raw SQL tied to the models (``bluecarbon/rows.py``).
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from bluecarbon.rows import RawInsert, column, loaded
from ledger import services as registry
from ledger import validation
from ledger.actors import Actor
from ledger.core.entry import format_time
from ledger.models import Account, Organization

from .. import intake, locks, receipts, records
from ..core import onboarding as onboarding_rules
from ..core import parties, sealing
from ..exceptions import AuctionErrorCode as Code
from ..exceptions import Conflict, InvalidInput, NotFound, PermissionDenied, Unprocessable
from ..models import ASCENDING_FORMATS, Auction, Bid, BidReceipt, Deposit


def _ciphertext(value: object) -> bytes:
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except ValueError:
            raise InvalidInput(
                "ciphertext must be standard base64",
                code=Code.MALFORMED_CIPHERTEXT,
                detail={"ciphertext": "invalid"},
            ) from None
    if not isinstance(value, bytes):
        raise InvalidInput("ciphertext is required", code=Code.MALFORMED_CIPHERTEXT)
    if not sealing.ENC_LENGTH + sealing.TAG_LENGTH < len(value) <= sealing.MAX_ENVELOPE:
        raise InvalidInput(
            f"a sealed bid is at most {sealing.MAX_ENVELOPE} bytes",
            code=Code.MALFORMED_CIPHERTEXT,
            detail={"ciphertext": "malformed_ciphertext"},
        )
    return value


def _check_sealed_for(a: Auction, raw: bytes) -> None:
    """The sealed bid has the shape the auction's sealing gives (checked without any key)."""
    try:
        if a.by_trustees:
            sealing.check_envelope(raw, len(a.trustees))
        else:
            sealing.check_ciphertext(raw)
    except sealing.SealError as exc:
        raise InvalidInput(
            str(exc), code=Code.MALFORMED_CIPHERTEXT, detail={"ciphertext": exc.code}
        ) from None


@dataclass(frozen=True)
class _Bidding:
    auction: Auction
    bidder: Organization
    now: dt.datetime
    standing: int  # the bidder's standing (sealed) bids in the auction
    holding: int | None  # the bidder's first holding account


def _open_for_bids(actor: Actor, auction: object) -> _Bidding:
    """The auction's bid gate held (shared), the bidder's row locked, the auction checked open
    and the bidder eligible; the instant the bid is taken.

    The bidder's row lock serializes its bid actions with each other (its count of standing
    bids cannot be raced) and with a change of its approval, which locks the same row: a bid
    is checked against the approval its entry will be replayed against. What it needs is then
    read by one statement that starts after both locks are held, so it sees what committed
    while it waited."""
    if actor.organization_id is None:
        raise PermissionDenied("bids are made by a bidder organization")
    a = locks.auction_share_lock(validation.object_id(auction) or 0)
    if a is None:
        raise NotFound(f"auction {auction} not found", detail={"auction": "not_found"})
    # The instant that decides: taken under the gate that closing must wait for.
    now = timezone.now()
    if a.format in ASCENDING_FORMATS:
        raise Conflict(
            f"auction {a.pk} is an ascending auction: it takes raises or round bids",
            code=Code.WRONG_FORMAT,
        )
    intake.refuse_unless_taking_bids(a, now, a.closes_at)
    org = intake.bidder_of(a, actor.organization_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT status FROM auctions_bidder WHERE organization_id = %s), "
            "(SELECT count(*) FROM auctions_bid WHERE auction_id = %s AND bidder_id = %s "
            "AND status = %s), "
            "(SELECT id FROM ledger_account WHERE organization_id = %s AND kind = %s "
            "ORDER BY id LIMIT 1), "
            "(SELECT amount FROM auctions_deposit WHERE auction_id = %s AND bidder_id = %s "
            "AND state = %s), "
            "(SELECT state FROM auctions_application WHERE auction_id = %s AND bidder_id = %s)",
            [
                org.pk,
                a.pk,
                org.pk,
                Bid.Status.SEALED,
                org.pk,
                Account.Kind.HOLDING,
                a.pk,
                org.pk,
                Deposit.State.HELD,
                a.pk,
                org.pk,
            ],
        )
        status, standing, holding, held, application = cursor.fetchone()
    # Its application to this auction decides, if it made one; else its standing approval.
    if not onboarding_rules.admitted(application, status):
        raise PermissionDenied(
            f"{org.handle} is not admitted to bid in auction {a.pk}"
            + (f" (its application is {application})" if application else ""),
            code=Code.NOT_APPROVED,
        )
    held = held or 0
    if a.deposit_required and held < a.deposit_required:
        raise Conflict(
            f"this auction needs a deposit of {a.deposit_required} (minor units); "
            f"{held} is recorded",
            code=Code.DEPOSIT_MISSING,
            detail={"required": a.deposit_required, "recorded": held},
        )
    return _Bidding(a, org, now, standing, holding)


def _receiving_account(b: _Bidding, account: object) -> Account:
    """The holding account credits are delivered to: the one named, which must be the
    bidder's, or the bidder's first holding account."""
    org = b.bidder
    if account is None:
        if b.holding is None:
            raise Unprocessable("the bidder has no holding account", detail={"account": "missing"})
        return Account(pk=b.holding, organization_id=org.pk, kind=Account.Kind.HOLDING)
    with connection.cursor() as cursor:  # raw: on the bid's path
        cursor.execute(
            "SELECT id, kind FROM ledger_account WHERE id = %s AND organization_id = %s",
            [validation.object_id(account) or 0, org.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"account {account} not found", detail={"account": "not_found"})
    if row[1] != Account.Kind.HOLDING:
        raise Unprocessable(
            "awards are delivered to a holding account", detail={"account": "buffer"}
        )
    return Account(pk=row[0], organization_id=org.pk, kind=row[1])


def receipt_note(r: BidReceipt, auction_id: int, bidder_id: int) -> str:
    """The receipt for one version of a bid: a C2SP signed note by the receipt key, not the
    ledger's checkpoint key (``auctions/receipts.py``, docs/auctions.md §3.5). Deterministic:
    the same facts and key always give the same bytes."""
    return receipt_note_of(
        auction=auction_id,
        bid=r.bid_id,
        bidder=bidder_id,
        version=r.version,
        action=r.action,
        commitment=r.commitment,
        entry_seq=r.entry_seq,
        time=r.time,
    )


def receipt_note_of(
    *,
    auction: int,
    bid: int,
    bidder: int,
    version: int,
    action: str,
    commitment: str,
    entry_seq: int,
    time: str,
) -> str:
    text = (
        f"{settings.LEDGER_ORIGIN}\n"
        "auction bid receipt v1\n"
        f"auction {auction}\n"
        f"bid {bid}\n"
        f"bidder {bidder}\n"
        f"version {version}\n"
        f"action {action}\n"
        f"commitment {commitment or '-'}\n"
        f"entry {entry_seq}\n"
        f"time {time}\n"
    )
    return receipts.receipt_sign(text)


def _bid_entry(
    action: str,
    actor: Actor,
    bid: Bid,
    ciphertext: bytes | None,
    now: dt.datetime,
) -> BidReceipt:
    """The bid's entry, and with it (one round trip, under the ledger head) the bid's
    entry_seq and the version's receipt row."""
    origin, salt = settings.LEDGER_ORIGIN, bid.salt
    data: dict[str, Any] = {"auction": bid.auction_id, "bid": bid.pk, "version": bid.version}
    # The bid's pseudonym and a commitment to its account, not the bidder: who bids is not
    # public before the close (parties.py). A bid from before pseudonyms keeps naming both.
    if salt is None:
        data["bidder"] = bid.bidder_id
    else:
        data["party"] = parties.party(origin, bid.auction_id, bid.pk, bid.bidder_id, bytes(salt))
    if ciphertext is not None:
        if salt is None:
            data["account"] = bid.account_id
        else:
            data["account_commitment"] = parties.account_commitment(
                origin, bid.auction_id, bid.pk, bid.version, bid.account_id, bytes(salt)
            )
        data |= {"commitment": bid.commitment, "ciphertext": records.b64(ciphertext)}
    time = format_time(now)
    commitment = bid.commitment if action != "withdraw" else ""

    def rows(seq: int) -> list[tuple[str, list[Any]]]:
        return [
            (_BID_ENTRY_SEQ, [seq, bid.pk]),
            (_RECEIPT_INSERT.sql(), [bid.pk, bid.version, action, commitment, seq, time]),
        ]

    entry = registry.ledger_append(type=f"bid.{action}", actor=actor, data=data, at=now, also=rows)
    bid.entry_seq = entry.seq
    return BidReceipt(
        bid=bid,
        version=bid.version,
        action=action,
        commitment=commitment,
        entry_seq=entry.seq,
        time=time,
    )


def bid_submit(
    *, actor: Actor, auction: int, ciphertext: bytes | str, account: int | None = None
) -> BidReceipt:
    """A new sealed bid. The server never sees the plaintext: it stores the ciphertext and puts
    its SHA-256 on the ledger. A bidder may have several bids; together they are its demand.

    The intake's hot path. Inside a caller's transaction it takes no savepoint: every check runs
    before its first write, and after that only a database error can stop it, which aborts the
    whole transaction (as ``credit_transfer`` does)."""
    if connection.in_atomic_block:
        return _bid_submit(actor, auction, ciphertext, account)
    with transaction.atomic():
        return _bid_submit(actor, auction, ciphertext, account)


def _bid_submit(
    actor: Actor, auction: int, ciphertext: bytes | str, account: int | None
) -> BidReceipt:
    raw = _ciphertext(ciphertext)
    b = _open_for_bids(actor, auction)
    a, org, now, standing = b.auction, b.bidder, b.now, b.standing
    _check_sealed_for(a, raw)
    acc = _receiving_account(b, account)
    limit = settings.AUCTION_MAX_BIDS_PER_BIDDER
    if standing >= limit:
        raise Conflict(
            f"at most {limit} standing bids per bidder; amend one instead",
            code=Code.TOO_MANY_BIDS,
            detail={"standing": standing},
        )
    commitment = sealing.commitment(raw).hex()
    salt = parties.new_salt()
    # Before the ledger head: the fewer statements under the head, the less every other
    # writer waits. ON CONFLICT: a duplicate ciphertext is refused by the unique index without
    # an error (which would abort the caller's transaction), so the refusal changes nothing.
    with connection.cursor() as cursor:
        cursor.execute(
            _BID_INSERT.sql(), [a.pk, org.pk, acc.pk, raw, commitment, Bid.Status.SEALED, salt]
        )
        row = cursor.fetchone()
    if row is None:
        raise Conflict(
            "this ciphertext was already submitted in this auction",
            code=Code.DUPLICATE_CIPHERTEXT,
        )
    bid = loaded(
        Bid,
        pk=row[0],
        auction=a,
        bidder=org,
        account=acc,
        version=1,
        ciphertext=raw,
        commitment=commitment,
        entry_seq=-1,
        status=Bid.Status.SEALED,
        salt=salt,
        reason="",  # the insert leaves these to the database's defaults (the answer shows both)
        awarded_lots=None,
    )
    return _bid_entry("submit", actor, bid, raw, now)


# The intake's statements, from the models (bluecarbon/rows.py). ON CONFLICT: a duplicate
# ciphertext is refused by the unique index without an error (see _bid_submit). ``reason`` and
# the opening's columns are left to their database defaults.
_BID_INSERT = RawInsert(
    Bid,
    [
        "auction",
        "bidder",
        "account",
        "version",
        "ciphertext",
        "commitment",
        "entry_seq",
        "status",
        "salt",
    ],
    literals={"version": "1", "entry_seq": "-1"},
    suffix=f"ON CONFLICT ({column(Bid, 'auction')}, {column(Bid, 'commitment')}) DO NOTHING "
    f"RETURNING {column(Bid, 'pk')}",
)
_RECEIPT_INSERT = RawInsert(
    BidReceipt, ["bid", "version", "action", "commitment", "entry_seq", "time"]
)
_BID_ENTRY_SEQ = (
    f"UPDATE {Bid._meta.db_table} SET {column(Bid, 'entry_seq')} = %s "
    f"WHERE {column(Bid, 'pk')} = %s"
)


def _own_bid(a: Auction, org: Organization, bid: object) -> Bid:
    found = locks.bid_lock(validation.object_id(bid) or 0)
    # Another bidder's bid is reported exactly like a missing one.
    if found is None or found.auction_id != a.pk or found.bidder_id != org.pk:
        raise NotFound(f"bid {bid} not found in auction {a.pk}", detail={"bid": "not_found"})
    if found.status != Bid.Status.SEALED:
        raise Conflict(f"bid {found.pk} is {found.status}", code=Code.BID_WITHDRAWN)
    return found


@transaction.atomic
def bid_amend(
    *,
    actor: Actor,
    auction: int,
    bid: int,
    ciphertext: bytes | str,
    account: int | None = None,
) -> BidReceipt:
    """Replace a bid with a new sealed version; the last version before close counts."""
    raw = _ciphertext(ciphertext)
    b = _open_for_bids(actor, auction)
    a, org, now = b.auction, b.bidder, b.now
    _check_sealed_for(a, raw)
    found = _own_bid(a, org, bid)
    acc = _receiving_account(b, account) if account is not None else found.account
    commitment = sealing.commitment(raw).hex()
    if Bid.objects.filter(auction=a, commitment=commitment).exclude(pk=found.pk).exists():
        raise Conflict(
            "this ciphertext was already submitted in this auction",
            code=Code.DUPLICATE_CIPHERTEXT,
        )
    found.version += 1
    found.account, found.ciphertext, found.commitment = acc, raw, commitment
    found.save(update_fields=["version", "account", "ciphertext", "commitment"])
    return _bid_entry("amend", actor, found, raw, now)


@transaction.atomic
def bid_withdraw(*, actor: Actor, auction: int, bid: int) -> BidReceipt:
    """Withdraw a bid before close: it does not count."""
    b = _open_for_bids(actor, auction)
    a, org, now = b.auction, b.bidder, b.now
    found = _own_bid(a, org, bid)
    found.version += 1
    found.status = Bid.Status.WITHDRAWN
    found.save(update_fields=["version", "status"])
    return _bid_entry("withdraw", actor, found, None, now)
