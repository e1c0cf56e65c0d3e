"""Issue 13, part 3: onboarding as services. An organization applies to bid in an auction and
an operator approves or refuses; the application then decides whether it may bid there. The
operator releases or forfeits the deposit of a bidder who is out of the auction. Each write is
one ledger entry that the replay checks (pseudonyms until the reveal), each refusal a stable
code that changes nothing."""

from __future__ import annotations

import pytest
from django.conf import settings

from auctions import onboarding, records, services
from auctions.core import parties
from auctions.exceptions import Conflict, InvalidInput, NotFound, PermissionDenied, Unprocessable
from auctions.models import Application, Auction, Deposit
from ledger import services as registry
from ledger.core.entry import decode_entry
from ledger.exceptions import Conflict as LedgerConflict
from ledger.models import Account, LedgerEntry, Role
from tests import factories
from tests.auctions.conftest import OPERATOR, Market, run_to_settlement, wait_for_close
from tests.auctions.test_verify_auctions import verify_fails

pytestmark = pytest.mark.usefixtures("verifier_path")


def _newcomer(m: Market):
    """A bidder organization no operator approved as a bidder: it bids only if admitted."""
    org = factories.organization(Role.BIDDER)
    m.accounts[org.pk] = factories.account(org)
    return org


def _last_entry() -> tuple[str, dict]:
    e = LedgerEntry.objects.order_by("-seq").first()
    return e.type, decode_entry(bytes(e.body)).data


# ---- applications ----------------------------------------------------------------------------


def test_an_approved_application_admits_a_bidder_and_nobody_sees_who_before_the_close(
    market, refused, verify_ledger
):
    m = market
    a = m.auction(closes_in=2)
    org = _newcomer(m)
    app = onboarding.application_submit(actor=m.actor(org), auction=a.pk)
    assert app.state == Application.State.PENDING
    kind, data = _last_entry()
    assert kind == "application.submit" and set(data) == {"auction", "applicant"}
    assert data["applicant"] == records.applicant_of(app) and len(data["applicant"]) == 64
    # Pending: not admitted yet.
    with refused(PermissionDenied, "bidder_not_approved"):
        m.bid(a, org, [(5000, 1)])
    onboarding.application_approve(actor=OPERATOR, auction=a.pk, bidder=org.pk)
    kind, data = _last_entry()
    assert kind == "application.approve" and "bidder" not in data
    m.bid(a, org, [(5000, 1)])
    verify_ledger()
    a = run_to_settlement(a)
    # The reveal named the applicant; its bid counted.
    reveal = LedgerEntry.objects.get(type="auction.reveal")
    named = decode_entry(bytes(reveal.body)).data["applications"]
    assert [x["bidder"] for x in named] == [org.pk]
    assert a.result["bidders"][0]["bidder"] == org.pk
    verify_ledger()


def test_a_refused_application_bars_even_an_approved_bidder(market, refused, verify_ledger):
    m = market
    a = m.auction()
    b = m.bidders[0]  # approved for every auction, until it applies to one
    onboarding.application_submit(actor=m.actor(b), auction=a.pk)
    app = onboarding.application_refuse(
        actor=OPERATOR, auction=a.pk, bidder=b.pk, reason="  missing KYC documents "
    )
    assert (app.state, app.reason) == ("refused", "missing KYC documents")
    assert _last_entry()[1]["reason"] == "missing KYC documents"
    with refused(PermissionDenied, "bidder_not_approved"):
        m.bid(a, b, [(5000, 1)])
    # It may apply again, and be approved this time.
    onboarding.application_submit(actor=m.actor(b), auction=a.pk)
    onboarding.application_approve(actor=OPERATOR, auction=a.pk, bidder=b.pk)
    m.bid(a, b, [(5000, 1)])
    # A suspended bidder is not admitted by its application.
    services.bidder_suspend(actor=OPERATOR, organization=b.pk)
    with refused(PermissionDenied, "bidder_not_approved"):
        m.bid(a, b, [(5100, 1)])
    verify_ledger()


def test_an_applicant_withdraws_once_its_bids_are_withdrawn(market, refused, verify_ledger):
    m = market
    a = m.auction()
    b = m.bidders[0]
    onboarding.application_submit(actor=m.actor(b), auction=a.pk)
    onboarding.application_approve(actor=OPERATOR, auction=a.pk, bidder=b.pk)
    receipt = m.bid(a, b, [(5000, 1)])
    with refused(Conflict, "bids_standing") as err:
        onboarding.application_withdraw(actor=m.actor(b), auction=a.pk, bidder=b.pk)
    assert err.value.detail == {"standing": 1}
    services.bid_withdraw(actor=m.actor(b), auction=a.pk, bid=receipt.bid_id)
    app = onboarding.application_withdraw(actor=m.actor(b), auction=a.pk, bidder=b.pk)
    assert app.state == Application.State.WITHDRAWN
    with refused(PermissionDenied, "bidder_not_approved"):
        m.bid(a, b, [(5000, 1)])
    verify_ledger()


def test_application_refusals_are_stable_codes_that_change_nothing(market, refused):
    m = market
    a = m.auction()
    b, other, _ = m.bidders
    seller = m.seller
    no_role = factories.organization(Role.TRUSTEE)
    with refused(Unprocessable, "bidder_not_approved"):
        onboarding.application_submit(actor=factories.actor_for(no_role), auction=a.pk)
    with refused(Unprocessable, "own_auction"):
        onboarding.application_submit(actor=OPERATOR, auction=a.pk, bidder=seller.pk)
    with refused(NotFound, "not_found"):
        onboarding.application_submit(actor=m.actor(b), auction=a.pk, bidder=other.pk)
    with refused(NotFound, "not_found"):
        onboarding.application_submit(actor=m.actor(b), auction=999_999)
    onboarding.application_submit(actor=m.actor(b), auction=a.pk)
    with refused(Conflict, "application_wrong_state") as err:
        onboarding.application_submit(actor=m.actor(b), auction=a.pk)
    assert err.value.detail == {"state": "pending"}
    with refused(PermissionDenied, "permission_denied"):
        onboarding.application_approve(actor=m.actor(b), auction=a.pk, bidder=b.pk)
    with refused(NotFound, "not_found"):
        onboarding.application_approve(actor=OPERATOR, auction=a.pk, bidder=other.pk)
    with refused(InvalidInput, "invalid_field") as err:
        onboarding.application_refuse(actor=OPERATOR, auction=a.pk, bidder=b.pk, reason=" ")
    assert err.value.detail == {"reason": "required"}
    onboarding.application_approve(actor=OPERATOR, auction=a.pk, bidder=b.pk)
    with refused(Conflict, "application_wrong_state"):
        onboarding.application_approve(actor=OPERATOR, auction=a.pk, bidder=b.pk)
    with refused(Conflict, "application_wrong_state"):
        onboarding.application_refuse(actor=OPERATOR, auction=a.pk, bidder=b.pk, reason="late")
    with refused(NotFound, "not_found"):  # another bidder's application, as if missing
        onboarding.application_withdraw(actor=m.actor(other), auction=a.pk, bidder=b.pk)
    with refused(Conflict, "application_wrong_state"):
        onboarding.application_withdraw(actor=m.actor(other), auction=a.pk, bidder=other.pk)
    services.auction_cancel(actor=OPERATOR, auction=a.pk, reason="withdrawn")
    with refused(Conflict, "auction_wrong_state"):
        onboarding.application_submit(actor=m.actor(other), auction=a.pk)


def test_applying_after_the_closing_time_is_refused(market, refused):
    m = market
    a = m.auction(closes_in=0.5)
    wait_for_close(a)
    with refused(Conflict, "auction_closed"):
        onboarding.application_submit(actor=m.actor(m.bidders[0]), auction=a.pk)


# ---- deposits released or forfeited ----------------------------------------------------------


def test_a_refused_applicants_deposit_is_released_and_can_be_recorded_again(market, verify_ledger):
    m = market
    a = m.auction(deposit_required=100_000)
    org = _newcomer(m)
    m.deposit(a, org, 100_000)
    onboarding.application_submit(actor=m.actor(org), auction=a.pk)
    onboarding.application_refuse(actor=OPERATOR, auction=a.pk, bidder=org.pk, reason="KYC")
    d = onboarding.deposit_release(actor=OPERATOR, auction=a.pk, bidder=org.pk, reason="refused")
    assert d.state == Deposit.State.RELEASED
    kind, data = _last_entry()
    # Named by the depositor's pseudonym before the close, like the deposit.record entry.
    assert kind == "deposit.release" and "bidder" not in data
    assert (data["amount"], data["reason"], len(data["depositor"])) == (100_000, "refused", 64)
    verify_ledger()
    # Money received again is a new deposit, not a top-up of the released one.
    d = m.deposit(a, org, 120_000)
    assert (d.state, d.amount) == (Deposit.State.HELD, 120_000)
    onboarding.application_submit(actor=m.actor(org), auction=a.pk)
    onboarding.application_approve(actor=OPERATOR, auction=a.pk, bidder=org.pk)
    m.bid(a, org, [(5000, 1)])
    verify_ledger()
    run_to_settlement(a)
    verify_ledger()


def test_a_withdrawn_applicants_deposit_is_forfeited_with_the_reason(market, verify_ledger):
    m = market
    a = m.auction(deposit_required=100_000)
    b = m.bidders[0]
    m.deposit(a, b, 100_000)
    onboarding.application_submit(actor=m.actor(b), auction=a.pk)
    onboarding.application_approve(actor=OPERATOR, auction=a.pk, bidder=b.pk)
    onboarding.application_withdraw(actor=m.actor(b), auction=a.pk, bidder=b.pk)
    d = onboarding.deposit_forfeit(
        actor=OPERATOR, auction=a.pk, bidder=b.pk, reason="withdrew after the terms' deadline"
    )
    assert d.state == Deposit.State.FORFEITED
    a = run_to_settlement(a)
    # The settlement releases only what was still held: nothing of this bidder's.
    settle = LedgerEntry.objects.get(type="auction.settle")
    assert decode_entry(bytes(settle.body)).data["deposits_released"] == []
    assert Deposit.objects.get(auction=a, bidder=b).state == Deposit.State.FORFEITED
    verify_ledger()


def test_a_deposit_of_a_bidder_without_bids_is_released_after_the_close(market, verify_ledger):
    m = market
    a = m.auction(closes_in=1)
    b, idle, _ = m.bidders
    m.deposit(a, b, 50_000)
    m.deposit(a, idle, 50_000)
    m.bid(a, b, [(5000, 1)])
    wait_for_close(a)
    assert services.auction_close(auction=a.pk)
    onboarding.deposit_release(actor=OPERATOR, auction=a.pk, bidder=idle.pk, reason="no bid")
    _, data = _last_entry()
    assert data["bidder"] == idle.pk  # revealed at the close: named
    services.auction_bids_open(auction=a.pk, first=0, last=2**62)
    services.auction_clear(auction=a.pk)
    services.auction_settle(auction=a.pk)
    verify_ledger()


def test_deposit_refusals_are_stable_codes_that_change_nothing(market, refused):
    m = market
    a = m.auction()
    b, c, _ = m.bidders
    m.deposit(a, b, 50_000)
    m.deposit(a, c, 50_000)
    m.bid(a, b, [(5000, 1)])
    release = onboarding.deposit_release
    with refused(PermissionDenied, "permission_denied"):
        release(actor=m.actor(c), auction=a.pk, bidder=c.pk, reason="mine")
    with refused(InvalidInput, "invalid_field"):
        release(actor=OPERATOR, auction=a.pk, bidder=c.pk, reason="")
    with refused(NotFound, "not_found"):
        release(actor=OPERATOR, auction=a.pk, bidder=m.seller.pk, reason="none")
    with refused(NotFound, "not_found"):
        release(actor=OPERATOR, auction=999_999, bidder=c.pk, reason="none")
    with refused(Conflict, "bids_standing"):
        onboarding.deposit_forfeit(actor=OPERATOR, auction=a.pk, bidder=b.pk, reason="breach")
    release(actor=OPERATOR, auction=a.pk, bidder=c.pk, reason="no bid")
    with refused(Conflict, "deposit_not_held") as err:
        release(actor=OPERATOR, auction=a.pk, bidder=c.pk, reason="again")
    assert err.value.detail == {"state": "released"}
    a = run_to_settlement(a)
    with refused(Conflict, "auction_wrong_state"):
        release(actor=OPERATOR, auction=a.pk, bidder=b.pk, reason="after")


# ---- organizations -----------------------------------------------------------------------------


def test_operators_onboard_bidders_and_trustees_and_nothing_else(db, refused):
    org = onboarding.organization_onboard(
        actor=OPERATOR, handle="ningbo-kelp", name="Ningbo Kelp Co.", roles=["bidder"]
    )
    assert org.roles == ["bidder"]
    assert list(org.accounts.values_list("kind", flat=True)) == [Account.Kind.HOLDING]
    trustee = onboarding.organization_onboard(
        actor=OPERATOR, handle="audit-trust", name="Audit Trust", roles=["trustee"]
    )
    assert trustee.roles == ["trustee"] and not trustee.accounts.exists()
    with refused(InvalidInput, "invalid_field"):
        onboarding.organization_onboard(actor=OPERATOR, handle="x", name="X", roles=["operator"])
    with refused(InvalidInput, "invalid_field"):
        onboarding.organization_onboard(actor=OPERATOR, handle="y", name="Y", roles=[])
    with refused(PermissionDenied, "permission_denied"):
        onboarding.organization_onboard(
            actor=factories.actor_for(org), handle="z", name="Z", roles=["bidder"]
        )
    with refused(LedgerConflict, "duplicate"):
        onboarding.organization_onboard(
            actor=OPERATOR, handle="ningbo-kelp", name="N", roles=["bidder"]
        )


# ---- the replay catches what the services would not write ---------------------------------------


def test_a_changed_application_row_fails_verification(market, verify_ledger):
    m = market
    a = m.auction()
    b = m.bidders[0]
    onboarding.application_submit(actor=m.actor(b), auction=a.pk)
    onboarding.application_refuse(actor=OPERATOR, auction=a.pk, bidder=b.pk, reason="no")
    Application.objects.filter(auction=a, bidder=b).update(state="approved")
    verify_fails(verify_ledger, "application", "differs from the ledger", "state")


def test_a_deposit_row_held_again_after_its_release_fails_verification(market, verify_ledger):
    m = market
    a = m.auction()
    b = m.bidders[0]
    m.deposit(a, b, 50_000)
    onboarding.deposit_release(actor=OPERATOR, auction=a.pk, bidder=b.pk, reason="out")
    Deposit.objects.filter(auction=a, bidder=b).update(state="held")
    verify_fails(verify_ledger, "deposit", "differs from the ledger", "state")


def test_a_release_entry_with_another_amount_fails_verification(market, verify_ledger):
    m = market
    a = m.auction()
    b = m.bidders[0]
    d = m.deposit(a, b, 50_000)
    depositor = parties.depositor(settings.LEDGER_ORIGIN, a.pk, b.pk, bytes(d.salt))
    data = {"auction": a.pk, "depositor": depositor, "amount": 1, "reason": "x"}
    entry = registry.ledger_append(type="deposit.release", actor=OPERATOR, data=data)
    verify_fails(verify_ledger, f"entry {entry.seq}", "the deposit held is 50000")


def test_an_approval_of_a_refused_application_fails_verification(market, verify_ledger):
    m = market
    a = m.auction()
    b = m.bidders[0]
    app = onboarding.application_submit(actor=m.actor(b), auction=a.pk)
    onboarding.application_refuse(actor=OPERATOR, auction=a.pk, bidder=b.pk, reason="no")
    entry = registry.ledger_append(
        type="application.approve",
        actor=OPERATOR,
        data={"auction": a.pk, "applicant": records.applicant_of(app)},
    )
    verify_fails(verify_ledger, f"entry {entry.seq}", "the application is refused")


def test_a_bid_the_service_let_through_while_its_application_was_pending_fails_at_the_reveal(
    market, verify_ledger, monkeypatch
):
    """What a dishonest operator could do: take a bid of an applicant it had not admitted. The
    ledger hides who bid until the close; the reveal shows it and the verifier fails."""
    m = market
    a = m.auction(closes_in=1.5)
    org = _newcomer(m)
    onboarding.application_submit(actor=m.actor(org), auction=a.pk)
    monkeypatch.setattr("auctions.services.bidding.onboarding_rules.admitted", lambda *args: True)
    m.bid(a, org, [(5000, 1)])
    monkeypatch.undo()
    verify_ledger()  # before the reveal, nothing shows who bid
    wait_for_close(a)
    assert services.auction_close(auction=a.pk)
    reveal = LedgerEntry.objects.get(type="auction.reveal")
    verify_fails(verify_ledger, f"entry {reveal.seq}", f"organization {org.pk}")


@pytest.mark.parametrize("what", ["deposit.release", "application.withdraw"])
def test_leaving_while_a_bid_stands_fails_at_the_reveal(market, verify_ledger, monkeypatch, what):
    m = market
    a = m.auction(closes_in=1.5)
    b = m.bidders[0]
    m.deposit(a, b, 50_000)
    onboarding.application_submit(actor=m.actor(b), auction=a.pk)
    onboarding.application_approve(actor=OPERATOR, auction=a.pk, bidder=b.pk)
    m.bid(a, b, [(5000, 1)])
    monkeypatch.setattr("auctions.onboarding._no_standing_bids", lambda *args: None)
    if what == "deposit.release":
        onboarding.deposit_release(actor=OPERATOR, auction=a.pk, bidder=b.pk, reason="early")
    else:
        onboarding.application_withdraw(actor=m.actor(b), auction=a.pk, bidder=b.pk)
    monkeypatch.undo()
    left = LedgerEntry.objects.filter(type=what).latest("seq").seq
    verify_ledger()  # who left is a pseudonym until the reveal
    wait_for_close(a)
    assert services.auction_close(auction=a.pk)
    verify_fails(verify_ledger, f"entry {left}: {what} while bid")


def test_an_auction_state_carries_applications_across_incremental_runs(market, tmp_path):
    import io

    from django.core.management import call_command

    m = market
    state = str(tmp_path / "state.json")
    a = m.auction(closes_in=1.5)
    org = _newcomer(m)
    onboarding.application_submit(actor=m.actor(org), auction=a.pk)
    onboarding.application_approve(actor=OPERATOR, auction=a.pk, bidder=org.pk)
    m.bid(a, org, [(5000, 1)])
    registry.ledger_checkpoint_issue()
    call_command("ledger_verify", "--no-progress", "--state-file", state, stdout=io.StringIO())
    run_to_settlement(a)
    registry.ledger_checkpoint_issue()
    out = io.StringIO()
    call_command(
        "ledger_verify", "--no-progress", "--since-checkpoint", "--state-file", state, stdout=out
    )
    assert out.getvalue().startswith("OK: ")
    assert Auction.objects.get(pk=a.pk).state == Auction.State.SETTLED
