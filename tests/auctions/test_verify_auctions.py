"""ledger_verify re-runs every cleared auction from the ledger alone (the bid ciphertexts, the
published key, the seed of the close entry) and fails, naming the entry, when a published
result, a revealed key, a bid's timing or an escrow movement does not hold up."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection, transaction

from auctions import records, selectors, services
from auctions.core import result as results
from auctions.core import sealing
from auctions.models import Auction, Bid, Deposit
from ledger import services as registry
from ledger.actors import Actor
from ledger.models import LedgerEntry
from tests.auctions.conftest import OPERATOR, TONNE, run_to_settlement, wait_for_close

# Both verifiers (serial, and on PostgreSQL the parallel one) must recompute every auction.
pytestmark = pytest.mark.usefixtures("verifier_path")

SYSTEM = Actor.system("auctions")


def verify_fails(verify_ledger, *words: str) -> str:
    with pytest.raises(AssertionError) as failure:
        verify_ledger()
    message = str(failure.value)
    for word in words:
        assert word in message, message
    return message


def test_every_rejection_is_recorded_with_its_reason_and_the_rest_clear(market, verify_ledger):
    m = market
    extra = [_bidder(m) for _ in range(5)]
    a = m.auction(closes_in=1.5, cap_bp=2500, bid_guarantee=True, reserve=3000)
    good, trimmed_cap, trimmed_deposit = m.bidders
    for b in [*m.bidders, *extra]:
        m.deposit(a, b, 1_000_000)  # 10,000.00 CNY covers 10,000.00 of bids
    m.bid(a, good, [(5000, 20)])  # 20 t at 50.00: 1,000.00, well within the deposit
    m.bid(a, trimmed_cap, [(4000, 40)])  # the cap is 25 lots: 15 trimmed
    m.bid(a, trimmed_deposit, [(100000, 20)])  # 1,000.00/t: the deposit covers 10 lots
    unreadable, wrong_bidder, malformed, off_tick, below = extra
    _submit(m, a, unreadable, b"\x01" * 300)
    _submit(m, a, wrong_bidder, _sealed(a, wrong_bidder, claims=good.pk))
    _submit(m, a, malformed, _sealed(a, malformed, text=b"not json at all"))
    m.bid(a, off_tick, [(3050, 1)])
    m.bid(a, below, [(2900, 1)])

    a = run_to_settlement(a)
    outcome = {row["bidder"]: row for row in selectors.auction_result(a)["bids"]}
    assert {b: (row["status"], row["reason"]) for b, row in outcome.items()} == {
        good.pk: ("valid", None),
        trimmed_cap.pk: ("valid", None),
        trimmed_deposit.pk: ("valid", None),
        unreadable.pk: ("rejected", "unreadable"),
        wrong_bidder.pk: ("rejected", "wrong_bidder"),
        malformed.pk: ("rejected", "malformed_plaintext"),
        off_tick.pk: ("rejected", "off_tick"),
        below.pk: ("rejected", "below_reserve"),
    }
    # Caps and deposits limit a bidder (all its bids together): the trimming is per bidder.
    bidders = {row["bidder"]: row for row in a.result["bidders"]}
    assert bidders[trimmed_cap.pk]["trimmed"] == [["over_cap", 15]]
    assert bidders[trimmed_cap.pk]["counted"] == [[4000, 25]]
    assert bidders[trimmed_deposit.pk]["trimmed"] == [["over_deposit", 10]]
    assert outcome[trimmed_deposit.pk]["awarded_lots"] == 10
    assert outcome[off_tick.pk]["sealed"] == [[3050, 1]]  # published as sealed
    assert outcome[unreadable.pk]["sealed"] is None
    assert Bid.objects.get(auction=a, bidder=off_tick).reason == "off_tick"
    # 20 + 25 + 10 = 55 lots of 100 wanted: undersubscribed, settled at the reserve.
    assert a.result["outcome"]["undersubscribed"] is True
    assert a.clearing_price == 3000
    verify_ledger()


def _bidder(m):
    from ledger.models import Role
    from tests import factories

    org = factories.organization(Role.BIDDER)
    m.accounts[org.pk] = factories.account(org)
    services.bidder_approve(actor=OPERATOR, organization=org.pk)
    return org


def _sealed(a: Auction, bidder, *, claims: int | None = None, text: bytes | None = None) -> bytes:
    plaintext = text or sealing.plaintext(a.pk, claims or bidder.pk, [{"price": 5000, "lots": 1}])
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    return sealing.SUITE.encrypt(
        plaintext,
        X25519PublicKey.from_public_bytes(bytes(a.public_key)),
        info=sealing.info(settings.LEDGER_ORIGIN, a.pk, bidder.pk),
    )


def _submit(m, a, bidder, ciphertext: bytes) -> None:
    services.bid_submit(actor=m.actor(bidder), auction=a.pk, ciphertext=ciphertext)


def _close_and_open(m) -> Auction:
    a = m.auction(closes_in=1.2, quantity=100 * TONNE)
    b1, b2, b3 = m.bidders
    m.bid(a, b1, [(6000, 70)])
    m.bid(a, b2, [(5000, 70)])
    m.bid(a, b3, [(4000, 70)])
    wait_for_close(a)
    assert services.auction_close(auction=a.pk)
    services.auction_bids_open(auction=a.pk, first=0, last=2**62)
    a.refresh_from_db()
    return a


def _forged_clear(a: Auction, mutate) -> int:
    """What a dishonest operator (who holds every key) could publish: the clear step's entry,
    with the result changed before it is appended. Returns the entry's seq."""
    from auctions import keys

    with transaction.atomic():
        private = keys.open_private_key(a.pk, bytes(a.private_key_sealed))
        held = dict(Deposit.objects.filter(auction=a).values_list("bidder_id", "amount"))
        book = [
            results.BookBid(
                bid=b.pk,
                bidder=b.bidder_id,
                account=b.account_id,
                commitment=b.commitment,
                deposit=held.get(b.bidder_id, 0),
                tiers=b.opened.get("tiers"),
                error=b.opened.get("error"),
            )
            for b in Bid.objects.filter(auction=a, status="sealed").order_by("pk")
        ]
        result = results.build_result(
            record=records.auction_rules(a), book=book, seed=bytes(a.seed), root=bytes(a.book_root)
        )
        data = {
            "auction": a.pk,
            "private_key": records.b64(private),
            "result": result,
            "result_sha256": results.result_sha256(result),
        }
        mutate(data)
        entry = registry.ledger_append(type="auction.clear", actor=SYSTEM, data=data)
        Auction.objects.filter(pk=a.pk).update(
            state="cleared",
            state_seq=entry.seq,
            private_key=private,
            result=data["result"],
            result_sha256=data["result_sha256"],
            clearing_price=data["result"]["outcome"]["clearing_price"],
        )
        return entry.seq


def test_a_result_that_gives_the_lot_to_someone_else_fails_verification(market, verify_ledger):
    a = _close_and_open(market)

    def steal(data):
        # The second bidder takes the first one's 70 lots at the same price.
        awards = data["result"]["outcome"]["awards"]
        awards[0]["bidder"], awards[1]["bidder"] = awards[1]["bidder"], awards[0]["bidder"]
        data["result_sha256"] = results.result_sha256(data["result"])

    seq = _forged_clear(a, steal)
    registry.ledger_checkpoint_issue()  # signed: the signature is not what is wrong
    verify_fails(
        verify_ledger,
        f"entry {seq}",
        "published result differs from the recomputation",
        "outcome.awards[0].bidder",
    )


def test_a_result_hash_that_is_not_the_results_fails(market, verify_ledger):
    a = _close_and_open(market)
    seq = _forged_clear(a, lambda d: d.update(result_sha256="00" * 32))
    verify_fails(verify_ledger, f"entry {seq}", "result_sha256")


def test_a_revealed_key_that_is_not_the_auctions_fails(market, verify_ledger):
    a = _close_and_open(market)
    other = records.b64(sealing.generate_private_key())
    seq = _forged_clear(a, lambda d: d.update(private_key=other))
    verify_fails(verify_ledger, f"entry {seq}", "not the auction's")


def test_escrow_moved_outside_the_auction_fails(market, verify_ledger):
    a = market.auction()
    # Code that bypassed the auction (the managed flag is the auction services' own).
    entry = registry.escrow_release(actor=OPERATOR, hold=a.hold_id, quantity=TONNE, managed=True)
    verify_fails(verify_ledger, f"entry {entry.seq}", "outside the auction")


def test_a_lot_freed_from_its_auction_in_the_table_fails(
    market, verify_ledger, escrow_owner_check_dropped
):
    """An insider clears the owner of an auction's lot (its check dropped), which would let the
    seller release it: the owner is in no entry, but the replayed reference gives it."""
    a = market.auction()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_escrowhold SET owner = '' WHERE id = %s", [a.hold_id])
    verify_fails(verify_ledger, f"escrow hold {a.hold_id} differs from the ledger", "owner")


def test_a_changed_bid_row_fails_verification(market, verify_ledger):
    a = market.auction()
    market.bid(a, market.bidders[0], [(5000, 1)])
    Bid.objects.filter(auction=a).update(commitment="ab" * 32)
    verify_fails(verify_ledger, "bid", "differs from the ledger", "commitment")


def test_a_changed_bid_ciphertext_fails_verification(market, verify_ledger):
    """Attack 6: the stored ciphertext of a bid changed (its commitment left as it was)."""
    a = market.auction()
    market.bid(a, market.bidders[0], [(5000, 1)])
    bid = Bid.objects.get(auction=a)
    changed = bytearray(bytes(bid.ciphertext))
    changed[-1] ^= 1
    Bid.objects.filter(pk=bid.pk).update(ciphertext=bytes(changed))
    verify_fails(verify_ledger, f"bid {bid.pk}", "ciphertext does not hash to its commitment")


def test_a_changed_stored_result_document_fails_verification(market, verify_ledger):
    """What the auction pages read, changed in the table (its hash left as the ledger has it):
    the tamper drill's auction-result-table attack."""
    a = _close_and_open(market)
    _forged_clear(a, lambda d: None)  # a true clear entry, and the table row as the clear writes it
    Auction.objects.filter(pk=a.pk).update(result={"outcome": {"clearing_price": 1}, "bidders": []})
    verify_fails(verify_ledger, f"auction {a.pk}", "stored result is not the one")


def test_a_bid_entry_timed_after_the_close_fails(market, verify_ledger):
    m = market
    a = m.auction(closes_in=1)
    wait_for_close(a)
    # Forced past the service's own check, as a dishonest operator could.
    with transaction.atomic():
        bidder = m.bidders[0]
        ciphertext = m.seal(a, bidder, [(5000, 1)])
        bid = Bid.objects.create(
            auction=a,
            bidder=bidder,
            account=m.accounts[bidder.pk],
            version=1,
            ciphertext=ciphertext,
            commitment=sealing.commitment(ciphertext).hex(),
            entry_seq=LedgerEntry.objects.count(),
        )
        entry = registry.ledger_append(
            type="bid.submit",
            actor=m.actor(bidder),
            data={
                "auction": a.pk,
                "bid": bid.pk,
                "bidder": bidder.pk,
                "version": 1,
                "account": bid.account_id,
                "commitment": bid.commitment,
                "ciphertext": records.b64(ciphertext),
            },
        )
    verify_fails(verify_ledger, f"entry {entry.seq}", "after auction")


def test_a_verified_state_carries_open_auctions_across_incremental_runs(market, tmp_path):
    """--since-checkpoint: an auction open at the first run clears before the second, and
    the second run recomputes it from the saved state (ciphertexts included)."""
    import io

    from django.core.management import call_command

    state = str(tmp_path / "state.json")
    a = market.auction(closes_in=1.5)
    market.bid(a, market.bidders[0], [(5000, 10)])
    registry.ledger_checkpoint_issue()
    call_command("ledger_verify", "--no-progress", "--state-file", state, stdout=io.StringIO())
    run_to_settlement(a)
    registry.ledger_checkpoint_issue()
    out = io.StringIO()
    call_command(
        "ledger_verify", "--no-progress", "--since-checkpoint", "--state-file", state, stdout=out
    )
    assert out.getvalue().startswith("OK: ")


def test_an_insider_who_lifts_a_suspension_in_the_table_is_caught(market, verify_ledger):
    """A suspension is a bidder.status entry (the API's POST .../bidder/suspend): a superuser
    who sets the row back to approved, so that the bidder's bids are taken again, is named."""
    from auctions.models import Bidder

    org = market.bidders[0]
    services.bidder_suspend(actor=OPERATOR, organization=org.pk)
    verify_ledger()
    Bidder.objects.filter(organization=org).update(status=Bidder.Status.APPROVED)
    verify_fails(verify_ledger, "bidder", "status")
