"""What the hypothesis state machines of the markets share (tests/auctions/test_english_state_
machine.py, test_clock_state_machine.py, tests/listings/test_state_machine.py): an example run
in a savepoint and rolled back, on a clock the machine moves; an attempt whose refusal must
leave the ledger as it was; a market of a seller and bidders; and the checks that hold for any
auction or listing (deposits, escrow, supply, the replay). Each machine keeps its own rules,
model and invariants in its own file; its invariants call the checks here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from itertools import count
from typing import Any, ClassVar
from unittest import mock

from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine

from auctions import services as auctions
from auctions.models import Auction, Award, Deposit
from ledger import signer
from ledger.actors import Actor
from ledger.exceptions import DomainError
from ledger.models import Batch, EscrowHold, Holding, LedgerEntry, Organization, Role
from ledger.signing import get_signer, trusted_verifiers
from ledger.verify import verify_ledger
from tests import factories

OPERATOR = factories.OPERATOR
TONNE = 1000


class SavepointMachine(RuleBasedStateMachine):
    """Each example runs in a savepoint that teardown rolls back: a fresh, empty ledger, which
    the checkpoint signer must not take for a rollback of the one it signed. The clock every
    service reads (``timezone.now``) is moved by ``self.skipped``.

    With ``frozen_clock`` it stands still between the machine's moves (a microsecond more at
    each reading, so that entries keep their order): a bid lands in the phase or round the
    machine chose, never in the one a slow step happened to reach. Without it, it is real time
    plus what the machine skipped."""

    frozen_clock: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        signer.state_reset()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.skipped = dt.timedelta()
        now: Callable[[], dt.datetime]
        if self.frozen_clock:
            base, ticks = timezone.now(), count()
            now = lambda: base + self.skipped + dt.timedelta(microseconds=next(ticks))  # noqa: E731
        else:
            real_now = timezone.now
            now = lambda: real_now() + self.skipped  # noqa: E731
        self._clock = mock.patch.object(timezone, "now", now)
        self._clock.start()

    def teardown(self) -> None:
        self._clock.stop()
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    def attempt(self, fn: Callable[..., Any], **kwargs: Any) -> tuple[Any, DomainError | None]:
        """``fn(**kwargs)`` in a savepoint: its result, or the domain error that refused it (a
        refused operation wrote nothing to the ledger)."""
        before = LedgerEntry.objects.count()
        try:
            with transaction.atomic():
                return fn(**kwargs), None
        except DomainError as exc:
            assert LedgerEntry.objects.count() == before, "a refused operation wrote the ledger"
            return None, exc


def code_of(err: DomainError | None) -> str | None:
    return None if err is None else str(err.code)


def run(machine: type[RuleBasedStateMachine], *, steps: int, examples: int = 25) -> None:
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    machine.TestCase().runTest()


# ---- a market -------------------------------------------------------------------------------


class Market:
    """A registry (``factories.World``), a batch of 1,000 t the developer holds and sells, and
    bidders (each with a holding account), approved to bid unless ``approve`` is false or
    their index is in ``unapproved``. Index ``seller`` (one past the bidders) stands for the
    seller itself."""

    def __init__(self, bidders: int, *, unapproved: Collection[int] = (), approve: bool = True):
        self.w = factories.World()
        self.batch = self.w.issue(1_000 * TONNE, share_bp=0)
        self.bidders: list[Organization] = []
        for i in range(bidders):
            org = factories.organization(Role.BIDDER)
            factories.account(org)
            if approve and i not in unapproved:
                auctions.bidder_approve(actor=OPERATOR, organization=org.pk)
            self.bidders.append(org)
        self.seller = bidders

    def actor(self, who: int) -> Actor:
        return self.w.dev if who == self.seller else factories.actor_for(self.bidders[who])


# ---- checks ---------------------------------------------------------------------------------


def assert_deposits_balance(auction: int, recorded: dict[int, int]) -> None:
    """The deposits the machine recorded (bidder organization: amount) are the table's, held
    while the auction runs; then the winners' applied, forfeited or held by their awards'
    payment, default or neither, and everyone else's released."""
    a = Auction.objects.get(pk=auction)
    awards = {w.bidder_id: w for w in Award.objects.filter(auction=a)}
    rows = {d.bidder_id: d for d in Deposit.objects.filter(auction=a)}
    assert {b: d.amount for b, d in rows.items()} == recorded
    for bidder, d in rows.items():
        if a.state in ("open", "closing", "cleared"):
            want = "held"
        elif bidder in awards:
            want = {"pending": "held", "delivered": "applied", "defaulted": "forfeited"}[
                awards[bidder].state
            ]
        else:
            want = "released"
        assert d.state == want, (a.state, bidder, d.state, want)


def assert_the_lot_is_never_over_allocated(auction: int) -> None:
    """The awards never exceed the lot; the escrow holds all of it until settlement, then
    what the awards still pending are owed."""
    a = Auction.objects.get(pk=auction)
    hold = EscrowHold.objects.get(pk=a.hold_id)
    awards = list(Award.objects.filter(auction=a))
    assert sum(w.quantity for w in awards) <= a.quantity
    pending = sum(w.quantity for w in awards if w.state == "pending")
    if a.state in ("open", "closing", "cleared"):
        assert hold.remaining == a.quantity
    else:
        assert hold.remaining == pending


def assert_supply_adds_up() -> None:
    for b in Batch.objects.all():
        held = sum(h.tradable + h.escrowed for h in Holding.objects.filter(batch=b))
        assert held + b.retired + b.cancelled == b.issued


def assert_replay_reproduces_the_tables() -> None:
    """The ledger replayed from sequence 0 reproduces every live table."""
    # A ledger no checkpoint has signed yet has no verifier keys on a fresh machine: the
    # development key (and with it the trusted keys file) exists once anything signed.
    get_signer()
    verify_ledger(verifiers=trusted_verifiers())
