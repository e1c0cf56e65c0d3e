"""English auctions (the Xiangshan format): open bids that beat the standing price by the
increment, a countdown each bid in the timed phase restarts, the end, award and settlement
through the sealed formats' steps, and a verifier that recomputes every bid, the end and the
result from the ledger and fails, naming the entry, when one does not hold up."""

from __future__ import annotations

import datetime as dt
import io
import time

import pytest
from django.db import transaction
from django.utils import timezone

from auctions import english, services
from auctions.core import english as rules_core
from auctions.core import parties
from auctions.exceptions import Conflict, InvalidInput, PermissionDenied, Unprocessable
from auctions.models import Auction, Award, Deposit, Paddle, Raise
from auctions.services import closing
from ledger import services as registry
from ledger.core.entry import decode_entry, format_time
from ledger.models import LedgerEntry, Role
from tests import factories
from tests.auctions.conftest import OPERATOR

pytestmark = pytest.mark.usefixtures("verifier_path")

LOT = 2_340_100  # kg: Xiangshan's 2,340.1 t


def english_auction(m, *, free_s: float = 0.6, countdown_s: int = 1, **rules) -> Auction:
    fields = dict(
        format="english",
        quantity=LOT,
        lot_kg=LOT,
        tick=10,
        reserve=3000,  # the start price: 30.00 CNY/t
        increments=[[0, 100], [10_000, 200]],
        countdown_s=countdown_s,
        deposit_required=3_000_000,
        undersubscribed="cancel",
        closes_in=free_s,
    )
    fields.update(rules)
    return m.auction(**fields)


def bid(m, a, org, price, **kw) -> Raise:
    return english.english_bid(actor=m.actor(org), auction=a.pk, price=price, **kw)


def deposits(m, a) -> None:
    for org in m.bidders:
        m.deposit(a, org, 3_000_000)


def wait_until(moment: dt.datetime) -> None:
    delay = (moment - timezone.now()).total_seconds()
    if delay > 0:
        time.sleep(delay + 0.01)


def run_out(a: Auction) -> Auction:
    """Wait for the countdown, then the worker's steps in this process."""
    a.refresh_from_db()
    wait_until(a.bidding_ends_at)
    assert services.auction_close(auction=a.pk)
    assert services.auction_clear(auction=a.pk)
    a.refresh_from_db()
    if a.state == Auction.State.CLEARED:
        assert services.auction_settle(auction=a.pk)
        a.refresh_from_db()
    return a


def test_the_highest_bid_wins_the_lot_at_its_price_and_settles_delivery_versus_payment(
    market, verify_ledger
):
    m = market
    a = english_auction(m)
    assert a.state == Auction.State.OPEN and a.public_key is None and a.sealing == "open"
    deposits(m, a)
    b1, b2, b3 = m.bidders
    bid(m, a, b1, 3000)  # the start price is a valid first bid
    bid(m, a, b2, 3100)
    bid(m, a, b3, 3500)  # more than the increment is fine
    last = bid(m, a, b1, 10_600)
    a = run_out(a)
    assert a.state == Auction.State.SETTLED
    assert a.clearing_price == 10_600
    award = Award.objects.get(auction=a)
    # 106.00 CNY/t x 2,340.1 t = 248,050.60 CNY, the Xiangshan hammer.
    assert (award.bidder_id, award.quantity, award.amount_due) == (b1.pk, LOT, 24_805_060)
    assert a.result["outcome"]["winning_bid"] == last.pk
    # The losers' deposits are released; the winner's waits for the payment.
    states = dict(Deposit.objects.filter(auction=a).values_list("bidder_id", "state"))
    assert states == {b1.pk: "held", b2.pk: "released", b3.pk: "released"}
    services.award_confirm_payment(actor=OPERATOR, award=award.pk)
    assert Deposit.objects.get(auction=a, bidder=b1).state == "applied"
    out = verify_ledger()
    assert "OK" in out or out


def test_each_bid_must_beat_the_standing_price_by_the_increment_of_its_band(market, refused):
    m = market
    a = english_auction(m, free_s=30)
    deposits(m, a)
    b1, b2, _ = m.bidders
    with refused(Unprocessable, "bid_too_low") as err:
        bid(m, a, b1, 2990)
    assert err.value.detail == {"price": "below_start", "minimum": 3000}
    with refused(Unprocessable, "price_off_tick"):
        bid(m, a, b1, 3005)
    bid(m, a, b1, 9_950)
    with refused(Unprocessable, "bid_too_low") as err:
        bid(m, a, b2, 10_000)  # 99.50 is in the first band: the step is 1.00
    assert err.value.detail == {"price": "below_increment", "minimum": 10_050}
    bid(m, a, b2, 10_050)
    with refused(Unprocessable, "bid_too_low") as err:
        bid(m, a, b1, 10_150)  # 100.50 is in the second band: the step is 2.00
    assert err.value.detail["minimum"] == 10_250
    with refused(Conflict, "already_leading"):
        bid(m, a, b2, 20_000)


def test_who_may_bid(market, refused):
    m = market
    a = english_auction(m, free_s=30)
    b1, b2, b3 = m.bidders
    m.deposit(a, b1, 3_000_000)
    with refused(Conflict, "deposit_insufficient"):
        bid(m, a, b2, 3000)
    outsider = factories.organization(Role.BIDDER)
    factories.account(outsider)
    with refused(PermissionDenied, "bidder_not_approved"):
        bid(m, a, outsider, 3000)
    with refused(Unprocessable, "own_auction"):
        english.english_bid(actor=m.sell, auction=a.pk, price=3000)
    # A sealed bid has no place in an English auction, nor an open one in a sealed auction.
    sealed = m.auction()
    with refused(Conflict, "wrong_format"):
        bid(m, sealed, b1, 3000)
    with refused(Conflict, "wrong_format"):
        services.bid_submit(actor=m.actor(b1), auction=a.pk, ciphertext=m.seal(sealed, b1, []))
    # The paddle's account is fixed by the first bid.
    bid(m, a, b1, 3000)
    other = factories.account(b1)
    m.deposit(a, b3, 3_000_000)
    bid(m, a, b3, 3100)
    with refused(Conflict, "paddle_account_fixed"):
        bid(m, a, b1, 3200, account=other.pk)


def test_bids_in_the_timed_phase_restart_the_countdown_and_nothing_counts_after_the_end(
    market, refused, verify_ledger
):
    m = market
    a = english_auction(m, free_s=0.3, countdown_s=1)
    deposits(m, a)
    b1, b2, _ = m.bidders
    bid(m, a, b1, 3000)  # in the free phase: the end stays the free phase's plus a countdown
    a.refresh_from_db()
    assert a.ends_at == a.closes_at + dt.timedelta(seconds=1)
    wait_until(a.closes_at)
    r = bid(m, a, b2, 3100)  # in the timed phase: the countdown restarts from this bid
    a.refresh_from_db()
    assert a.ends_at == r.time + dt.timedelta(seconds=1)
    assert not services.auction_close(auction=a.pk)  # not yet: the countdown runs
    wait_until(a.ends_at)
    with refused(Conflict, "auction_closed"):
        bid(m, a, b1, 3200)
    a = run_out(a)
    assert a.state == Auction.State.SETTLED and a.clearing_price == 3100
    verify_ledger()


def test_a_hard_close_ends_bidding_whatever_the_countdown(market):
    m = market
    now = timezone.now()
    a = english_auction(
        m, free_s=0.2, countdown_s=60, hard_close_at=now + dt.timedelta(seconds=0.8)
    )
    deposits(m, a)
    a.refresh_from_db()
    assert a.ends_at == a.hard_close_at
    wait_until(a.closes_at)
    bid(m, a, m.bidders[0], 3000)
    a.refresh_from_db()
    assert a.ends_at == a.hard_close_at


def test_no_bid_cancels_or_returns_the_lot_as_the_rules_say(market, verify_ledger):
    m = market
    cancelled = run_out(english_auction(m, free_s=0.2, countdown_s=1))
    assert cancelled.state == Auction.State.CANCELLED
    unsold = run_out(english_auction(m, free_s=0.2, countdown_s=1, undersubscribed="settle"))
    assert unsold.state == Auction.State.SETTLED and not Award.objects.filter(auction=unsold)
    verify_ledger()


def test_invalid_rules_are_refused(market, refused):
    m = market
    for rules, code in [
        ({"increments": [[100, 100]]}, "invalid_increments"),  # the bands start at 0
        ({"increments": [[0, 100], [0, 200]]}, "invalid_increments"),
        ({"increments": [[0, 105]]}, "invalid_increments"),  # not a multiple of the tick
        ({"increments": "100"}, "invalid_increments"),
        ({"countdown_s": 0}, "invalid_countdown"),
        ({"cap_bp": 2500}, "invalid_rules"),
        ({"sealing_mode": "trustees"}, None),
    ]:
        with refused(InvalidInput, "invalid_rules") as err:
            english_auction(m, **rules)
        if code:
            assert err.value.detail == {"rules": code}, rules
    with refused(InvalidInput, "invalid_rules"):
        m.auction(countdown_s=60)  # a uniform-price auction has no countdown


def test_pseudonymous_until_the_end_then_revealed(market, verify_ledger):
    m = market
    a = english_auction(m)
    deposits(m, a)
    b1, b2, _ = m.bidders
    bid(m, a, b1, 3000)
    bid(m, a, b2, 3100)
    bid(m, a, b1, 3200)
    entries = LedgerEntry.objects.filter(type="bid.raise").order_by("seq")
    bodies = [bytes(e.body).decode() for e in entries]
    for body in bodies:
        assert f'"bidder":{b1.pk}' not in body and f'"bidder":{b2.pk}' not in body
    # One paddle per bidder: the first and the third bid are the same party's.
    paddles = [Raise.objects.get(entry_seq=e.seq).paddle.pseudonym for e in entries]
    assert paddles[0] == paddles[2] != paddles[1]
    assert paddles[0] in bodies[0]
    verify_ledger()  # before the reveal: the bidder columns are not derivable, and not compared
    a = run_out(a)
    reveal = LedgerEntry.objects.get(type="auction.reveal", seq=a.revealed_seq)
    assert {p["bidder"] for p in decode_entry(bytes(reveal.body)).data["paddles"]} == {b1.pk, b2.pk}
    verify_ledger()


def test_an_insider_changing_a_bid_or_a_paddle_is_caught(market, verify_ledger):
    from tests.auctions.test_verify_auctions import verify_fails

    m = market
    a = english_auction(m, free_s=30)
    deposits(m, a)
    b1, b2, _ = m.bidders
    r = bid(m, a, b1, 3000)
    bid(m, a, b2, 3100)
    Raise.objects.filter(pk=r.pk).update(price=3050)
    verify_fails(verify_ledger, f"english bid {r.pk}", "price")
    Raise.objects.filter(pk=r.pk).update(price=3000)
    # The account the lot would go to, changed before the reveal: the paddle no longer opens.
    paddle = Paddle.objects.get(auction=a, bidder=b1)
    Paddle.objects.filter(pk=paddle.pk).update(account=factories.account(b1))
    verify_fails(verify_ledger, f"english bid {r.pk}", "paddle")


def test_a_forged_raise_below_the_increment_or_after_the_end_fails_verification(
    market, verify_ledger
):
    from tests.auctions.test_verify_auctions import verify_fails

    m = market
    a = english_auction(m, free_s=30)
    deposits(m, a)
    b1, b2, _ = m.bidders
    bid(m, a, b1, 5000)
    # Forced past the service's checks, as a dishonest operator could: b2 "outbids" by 0.10.
    with transaction.atomic():
        paddle = english.paddle_for(a, b2, None)
        forged = Raise.objects.create(
            auction=a, paddle=paddle, price=5010, time=timezone.now(), entry_seq=-1
        )
        entry = registry.ledger_append(
            type="bid.raise",
            actor=m.actor(b2),
            data={
                "auction": a.pk,
                "bid": forged.pk,
                "paddle": paddle.pseudonym,
                "price": 5010,
                "ends_at": format_time(a.closes_at + dt.timedelta(seconds=1)),
            },
        )
    verify_fails(verify_ledger, f"entry {entry.seq}", "below_increment")


def test_the_paddle_commits_to_bidder_and_account():
    salt = bytes(32)
    p = parties.paddle("origin", 7, 3, 4, salt)
    assert p != parties.paddle("origin", 7, 3, 5, salt) != parties.paddle("origin", 7, 4, 4, salt)
    assert len(p) == 64


def test_deadline_is_the_free_phase_or_the_last_bid_plus_the_countdown():
    t0 = dt.datetime(2023, 2, 28, 9, 0, tzinfo=dt.UTC)
    r = rules_core.Rules(
        start=3000,
        tick=10,
        lot_kg=LOT,
        increments=((0, 100),),
        countdown_s=60,
        closes_at=t0,
        hard_close_at=t0 + dt.timedelta(minutes=30),
    )
    assert r.deadline(None) == t0 + dt.timedelta(seconds=60)
    assert r.deadline(t0 - dt.timedelta(minutes=5)) == t0 + dt.timedelta(seconds=60)
    assert r.deadline(t0 + dt.timedelta(seconds=59)) == t0 + dt.timedelta(seconds=119)
    assert r.deadline(t0 + dt.timedelta(minutes=29, seconds=30)) == r.hard_close_at


def test_the_standalone_verifier_recomputes_an_english_auction_from_the_exported_log(
    market, tmp_path
):
    """``bluecarbon-audit verify`` on the tiles alone: no database, no server code."""
    from bluecarbon_audit.policy import Policy
    from bluecarbon_audit.sources import open_source
    from bluecarbon_audit.verify import VerifyOptions, verify
    from django.core.management import call_command

    from ledger.signing import trusted_verifiers

    m = market
    a = english_auction(m)
    deposits(m, a)
    b1, b2, _ = m.bidders
    for org, price in [(b1, 3000), (b2, 3100), (b1, 3200), (b2, 5000)]:
        bid(m, a, org, price)
    run_out(a)
    registry.ledger_checkpoint_issue()
    call_command("ledger_export_tiles", str(tmp_path / "log"), stdout=io.StringIO())
    policy = Policy.from_flags([v.to_string() for v in trusted_verifiers()], [], None)
    report = verify(open_source(str(tmp_path / "log")), VerifyOptions(policy=policy, workers=0))
    assert report.ok, report.failure
    assert report.auctions["by_state"] == {"settled": 1}
    assert report.auctions["english_bids"] == 4 and report.auctions["recleared"] == 1


def test_a_reveal_that_names_another_bidder_behind_a_paddle_is_caught(
    market, verify_ledger, monkeypatch
):
    """The operator's code writes the reveal: naming the loser behind the winning paddle (to
    give it the lot) does not open the paddle the bids carried."""
    from tests.auctions.test_verify_auctions import verify_fails

    m = market
    a = english_auction(m)
    deposits(m, a)
    b1, b2, _ = m.bidders
    bid(m, a, b1, 3000)
    bid(m, a, b2, 3100)
    real = closing._append  # the reveal's append

    def forge(type, actor, data, at=None):
        if type == "auction.reveal":
            p1, p2 = data["paddles"]
            p1["bidder"], p2["bidder"] = p2["bidder"], p1["bidder"]
        return real(type, actor, data, at)

    monkeypatch.setattr(closing, "_append", forge)
    a.refresh_from_db()
    wait_until(a.bidding_ends_at)
    assert services.auction_close(auction=a.pk)
    verify_fails(verify_ledger, "for no paddle that bid")


def test_an_insider_who_ends_bidding_early_in_the_database_is_caught(market, verify_ledger):
    """A superuser moves the end forward to cut a rival off: the worker closes at once, and the
    close contradicts the end its bids on the ledger give."""
    from tests.auctions.test_verify_auctions import verify_fails

    m = market
    a = english_auction(m, free_s=30)
    deposits(m, a)
    b1, b2, _ = m.bidders
    bid(m, a, b1, 3000)
    bid(m, a, b2, 3100)
    a.refresh_from_db()
    Auction.objects.filter(pk=a.pk).update(ends_at=timezone.now() - dt.timedelta(seconds=1))
    assert services.auction_close(auction=a.pk)
    verify_fails(verify_ledger, f"auction {a.pk}", "its bids on the ledger give")
    # The table put back as the ledger has it: the close entry itself still gives it away.
    Auction.objects.filter(pk=a.pk).update(ends_at=a.ends_at)
    verify_fails(verify_ledger, "cannot be replayed", f"auction {a.pk}: the close says")
