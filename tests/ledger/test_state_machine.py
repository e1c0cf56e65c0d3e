"""Random sequences of registry operations, through every path that writes: the single
services, bulk runs (``bulk_apply``: transfers set-based, the rest one by one) and auctions
from creation through bids, close, clearing and settlement to payment or default, sealed to a
key the operator holds or to k of three trustees (their keys registered, released after the
close, or too few by the deadline and the auction failed). After every step the ledger,
replayed from sequence 0, must reproduce the live tables exactly (registry and auctions) and
the supply invariants must hold; a refused operation must leave the ledger as it was."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from bluecarbon_audit.auctions import trustee_keys
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from auctions import services as auctions
from auctions import trustees
from auctions.core import sealing
from auctions.models import Auction, Award, TrusteeKey
from ledger import services, signer
from ledger.apis.auth import ALL_SCOPES
from ledger.bulk import bulk_apply
from ledger.exceptions import DomainError
from ledger.models import Account, Batch, EscrowHold, Holding, LedgerEntry, Role
from ledger.signing import trusted_verifiers
from ledger.verify import verify_ledger
from tests import factories

amounts = st.one_of(st.integers(1, 3_000), st.integers(1, 2_000_000))
# Issuances: sometimes large enough to sell in lots and move in bulk.
issued = st.one_of(amounts, st.integers(100_000, 2_000_000))
# Mostly the developer's account, which receives every issuance, so moves usually succeed.
senders = st.sampled_from([0, 0, 0, 1, 2, 3])
# A bulk request's operations: mostly transfers (runs of them take the set-based path), between
# holding accounts, from one that holds some of the batch, each of a share (in %) of what its
# sender held when the request was made (one refused operation refuses the whole request).
bulk_ops = st.lists(
    st.tuples(
        st.sampled_from(["transfer"] * 8 + ["retire", "cancel", "issue"]),
        st.integers(0, 2),  # the sender: which of the accounts holding some
        st.integers(1, 2),  # the recipient: the next account but one or two (not the sender)
        st.integers(1, 40),
    ),
    min_size=2,
    max_size=10,
)


# A sealed bid: up to three price tiers (30.00 CNY/t is the reserve) of one to five lots.
sealed_tiers = st.lists(
    st.tuples(st.integers(25, 60), st.integers(1, 5)),
    min_size=1,
    max_size=3,
    unique_by=lambda t: t[0],
)


def tonnes(kg: int) -> str:
    return f"{kg // 1000}.{kg % 1000:03d}"


class RegistryMachine(RuleBasedStateMachine):
    batches = Bundle("batches")
    holds = Bundle("holds")
    auctions = Bundle("auctions")
    awards = Bundle("awards")

    def __init__(self) -> None:
        super().__init__()
        # Each example runs in a savepoint that teardown rolls back: a fresh, empty ledger,
        # which the checkpoint signer must not take for a rollback of the one it signed.
        signer.state_reset()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.years: dict[int, int] = {}
        # The clock every service reads: real time plus what the machine skipped to close an
        # auction (auctions close at their closing time; nobody waits for it here).
        self.skipped = dt.timedelta()
        real_now = timezone.now
        self._clock = mock.patch.object(timezone, "now", lambda: real_now() + self.skipped)
        self._clock.start()

    def teardown(self) -> None:
        self._clock.stop()
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    @initialize()
    def world(self) -> None:
        assert LedgerEntry.objects.count() == 0
        self.w = factories.World()
        self.second = factories.project(self.w.registry, self.w.developer, ecosystem="seagrass")
        self.accounts = [
            self.w.dev_account.pk,
            self.w.buyer_account.pk,
            factories.account(self.w.buyer, "Second").pk,
            self.w.buffer.pk,
        ]
        self.bidders = []
        for _ in range(2):
            org = factories.organization(Role.BIDDER)
            factories.account(org)
            auctions.bidder_approve(actor=factories.OPERATOR, organization=org.pk)
            self.bidders.append(org)
        # Three trustees, each deriving its keys from a seed as the trustee program does.
        self.trustees = [factories.organization(Role.TRUSTEE) for _ in range(3)]
        self.seeds = {org.pk: trustee_keys.new_seed() for org in self.trustees}
        self.key_index: dict[bytes, tuple[int, int]] = {}  # public key -> (trustee, index)
        for org in self.trustees:
            self._keys_register(org, 2)

    def _keys_register(self, org, count: int) -> None:
        first = sum(1 for t, _ in self.key_index.values() if t == org.pk)
        public = [
            trustee_keys.public_key(self.seeds[org.pk], i) for i in range(first, first + count)
        ]
        trustees.trustee_keys_register(actor=factories.actor_for(org), public_keys=public)
        self.key_index.update({k: (org.pk, first + i) for i, k in enumerate(public)})

    def _private(self, auction: Auction, org) -> bytes:
        key = TrusteeKey.objects.get(auction=auction, organization=org)
        trustee, index = self.key_index[bytes(key.public_key)]
        return trustee_keys.private_key(self.seeds[trustee], index)

    def _attempt(self, fn, **kwargs):
        before = LedgerEntry.objects.count()
        try:
            with transaction.atomic():
                result = fn(**kwargs)
        except DomainError:
            assert LedgerEntry.objects.count() == before, "a refused operation wrote the ledger"
            return None
        assert LedgerEntry.objects.count() > before
        return result

    def _year(self, project_id: int) -> int:
        year = self.years.get(project_id, 2000)
        self.years[project_id] = year + 1
        return year

    @rule(target=batches, second=st.booleans(), qty=issued, share=st.integers(0, 10_000))
    def issue(self, second: bool, qty: int, share: int):
        project = self.second if second else self.w.project
        year = self._year(project.pk)
        b = self._attempt(
            services.batch_issue,
            actor=factories.OPERATOR,
            project=project.pk,
            monitoring_start=dt.date(year, 1, 1),
            monitoring_end=dt.date(year, 12, 31),
            verification_body="DNV",
            verification_report_sha256=factories.sha(str(year)),
            quantity=qty,
            buffer_share_bp=share,
            holder=self.w.dev_account.pk,
        )
        return b.pk if b else multiple()

    @rule(batch=batches, src=senders, dst=st.integers(0, 3), qty=amounts)
    def transfer(self, batch: int, src: int, dst: int, qty: int) -> None:
        self._attempt(
            services.credit_transfer,
            actor=factories.OPERATOR,
            batch=batch,
            sender=self.accounts[src],
            recipient=self.accounts[dst],
            quantity=qty,
        )

    @rule(batch=batches, src=senders, qty=amounts)
    def retire(self, batch: int, src: int, qty: int) -> None:
        self._attempt(
            services.credit_retire,
            actor=factories.OPERATOR,
            batch=batch,
            account=self.accounts[src],
            quantity=qty,
            beneficiary="Ningbo",
            purpose="offset",
            jurisdiction="CN-ZJ",
        )

    @rule(batch=batches, src=senders, qty=amounts)
    def cancel(self, batch: int, src: int, qty: int) -> None:
        self._attempt(
            services.credit_cancel,
            actor=factories.OPERATOR,
            batch=batch,
            account=self.accounts[src],
            quantity=qty,
            reason="exported",
            destination="Verra",
        )

    @rule(target=holds, batch=batches, src=senders, qty=amounts)
    def hold(self, batch: int, src: int, qty: int):
        h = self._attempt(
            services.escrow_hold,
            actor=factories.OPERATOR,
            batch=batch,
            account=self.accounts[src],
            quantity=qty,
            reference="auction",
        )
        return h.pk if h else multiple()

    @rule(hold=holds, qty=st.integers(1, 3_000), dst=st.one_of(st.none(), st.integers(0, 3)))
    def settle(self, hold: int, qty: int, dst: int | None) -> None:
        if dst is None:
            self._attempt(
                services.escrow_release, actor=factories.OPERATOR, hold=hold, quantity=qty
            )
        else:
            self._attempt(
                services.escrow_deliver,
                actor=factories.OPERATOR,
                hold=hold,
                recipient=self.accounts[dst],
                quantity=qty,
            )

    @rule(second=st.booleans(), qty=amounts)
    def reversal(self, second: bool, qty: int) -> None:
        project = self.second if second else self.w.project
        self._attempt(
            services.reversal_record,
            actor=factories.OPERATOR,
            project=project.pk,
            quantity=qty,
            evidence_sha256=factories.sha("storm"),
            description="Typhoon damage",
        )

    @rule(target=batches, batch=batches, ops=bulk_ops)
    def bulk(self, batch: int, ops: list[tuple[str, int, int, int]]):
        held = dict(Holding.objects.filter(batch_id=batch).values_list("account_id", "tradable"))
        holders = [i for i in range(3) if held.get(self.accounts[i], 0)] or [0]
        operations = []
        for kind, pick, step, share in ops:
            src = holders[pick % len(holders)]
            qty = max(1, held.get(self.accounts[src], 0) * share // 100)
            if kind == "transfer":
                operations.append(
                    {
                        "op": "transfer",
                        "batch": batch,
                        "sender": self.accounts[src],
                        "recipient": self.accounts[(src + step) % 3],
                        "quantity": tonnes(qty),
                    }
                )
            elif kind == "issue":
                year = self._year(self.w.project.pk)
                operations.append(
                    {
                        "op": "issue",
                        "project": self.w.project.pk,
                        "monitoring_start": f"{year}-01-01",
                        "monitoring_end": f"{year}-12-31",
                        "verification_body": "DNV",
                        "verification_report_sha256": factories.sha(str(year)),
                        "quantity": tonnes(share * 1000),
                        "buffer_share": "20",
                        "holder": self.w.dev_account.pk,
                    }
                )
            else:
                operations.append(
                    {
                        "op": kind,
                        "batch": batch,
                        "account": self.accounts[src],
                        "quantity": tonnes(qty),
                        **(
                            {"beneficiary": "Ningbo", "purpose": "offset", "jurisdiction": "CN-ZJ"}
                            if kind == "retire"
                            else {"reason": "exported"}
                        ),
                    }
                )
        results = self._attempt(
            bulk_apply, actor=factories.OPERATOR, scopes=ALL_SCOPES, operations=operations
        )
        return multiple(*(r["batch"] for r in results or [] if r["op"] == "issue"))

    # ---- auctions: the seller is the developer, the lot comes from its account ----------------

    @rule(
        target=auctions,
        batch=batches,
        format=st.sampled_from(["uniform", "pay_as_bid", "first_price", "second_price"]),
        lots=st.integers(1, 4),
        lot_kg=st.sampled_from([10, 1_000]),
        deposit=st.booleans(),
        undersubscribed=st.sampled_from(["settle", "cancel"]),
        bids=st.lists(st.tuples(st.integers(0, 1), sealed_tiers), max_size=3),
        threshold=st.sampled_from([0, 0, 1, 2, 2, 3]),  # k of the three trustees; 0: operator
    )
    def auction(
        self,
        batch: int,
        format: str,
        lots: int,
        lot_kg: int,
        deposit: bool,
        undersubscribed: str,
        bids: list[tuple[int, list[tuple[int, int]]]],
        threshold: int,
    ):
        if format in ("first_price", "second_price"):
            lot_kg, lots = lot_kg * lots, 1
        now = timezone.now()
        closes_at = now + dt.timedelta(hours=1)
        sealed: dict[str, object] = {}
        if threshold:
            for org in self.trustees:  # scheduling takes an unused key of each
                if not TrusteeKey.objects.filter(organization=org, auction__isnull=True).exists():
                    self._keys_register(org, 2)
            sealed = dict(
                sealing_mode="trustees",
                trustee_ids=[o.pk for o in self.trustees],
                threshold=threshold,
                release_by=closes_at + dt.timedelta(hours=1),
            )
        a = self._attempt(
            auctions.auction_create,
            actor=self.w.dev,
            account=self.w.dev_account.pk,
            batch=batch,
            title="Xihu Port seaweed sink",
            format=format,
            quantity=lots * lot_kg,
            lot_kg=lot_kg,
            currency="CNY",
            tick=100,
            reserve=3000,
            cap_bp=None,
            deposit_required=100_000 if deposit else 0,
            bid_guarantee=False,
            tie_rule="random_order",
            undersubscribed=undersubscribed,
            opens_at=now - dt.timedelta(seconds=1),
            closes_at=closes_at,
            **sealed,
        )
        if a is None:
            return multiple()
        if self._attempt(auctions.auction_schedule, actor=self.w.dev, auction=a.pk) is None:
            return multiple()  # the seller holds too little: a draft, which goes no further
        for bidder, bid_tiers in bids:  # the first bids (the bid rule adds more later)
            if deposit:
                self.deposit(a.pk, bidder)
            self.bid(a.pk, bidder, bid_tiers)
        return a.pk

    @rule(auction=auctions, bidder=st.integers(0, 1))
    def deposit(self, auction: int, bidder: int) -> None:
        self._attempt(
            auctions.deposit_record,
            actor=factories.OPERATOR,
            auction=auction,
            bidder=self.bidders[bidder].pk,
            amount=100_000,
        )

    @rule(auction=auctions, bidder=st.integers(0, 1), tiers=sealed_tiers)
    def bid(self, auction: int, bidder: int, tiers: list[tuple[int, int]]) -> None:
        a = Auction.objects.get(pk=auction)
        org = self.bidders[bidder]
        single = a.format in ("first_price", "second_price")  # one lot: a tier of one
        plain = [
            {"price": p * 100, "lots": 1 if single else n} for p, n in sorted(tiers, reverse=True)
        ]
        origin = django_settings.LEDGER_ORIGIN
        if a.by_trustees:
            ciphertext = sealing.seal_threshold(
                trustee_keys=[bytes(k.public_key) for k in trustees.auction_keys(a)],
                threshold=a.threshold or 0,
                origin=origin,
                auction=a.pk,
                bidder=org.pk,
                tiers=plain,
            )
        else:
            ciphertext = sealing.seal(
                public_key=bytes(a.public_key),
                origin=origin,
                auction=a.pk,
                bidder=org.pk,
                tiers=plain,
            )
        self._attempt(
            auctions.bid_submit,
            actor=factories.actor_for(org),
            auction=auction,
            ciphertext=ciphertext,
        )

    @rule(auction=auctions, operator=st.booleans())
    def auction_cancel(self, auction: int, operator: bool) -> None:
        self._attempt(
            auctions.auction_cancel,
            actor=factories.OPERATOR if operator else self.w.dev,
            auction=auction,
            reason="withdrawn",
        )

    @rule(auction=auctions, trustee=st.integers(0, 2), own=st.booleans())
    def trustee_release_out_of_turn(self, auction: int, trustee: int, own: bool) -> None:
        """A trustee releasing while no auction waits for keys (before its close, after its
        result, or not sealed to it), or a key that is not its own: nothing is written."""
        a = Auction.objects.get(pk=auction)
        org = self.trustees[trustee]
        assigned = TrusteeKey.objects.filter(auction=a, organization=org).exists()
        private = (
            self._private(a, org)
            if own and assigned
            else trustee_keys.private_key(self.seeds[org.pk], 10_000)  # one it never registered
        )
        before = LedgerEntry.objects.count()
        try:
            with transaction.atomic():
                trustees.trustee_release(
                    actor=factories.actor_for(org), auction=auction, private_key=private
                )
        except DomainError:
            pass
        assert LedgerEntry.objects.count() == before

    def _skip_to(self, when: dt.datetime) -> None:
        self.skipped += max(when - timezone.now(), dt.timedelta()) + dt.timedelta(milliseconds=1)

    @rule(
        target=awards,
        auction=auctions,
        order=st.permutations([0, 1, 2]),
        more=st.sampled_from([0, 0, 0, 1, -1]),
    )
    def auction_run(self, auction: int, order: list[int], more: int):
        """The worker's steps: at the closing time, close; trustees: k + ``more`` of them (in
        ``order``) release their keys, and with fewer than k the deadline passes and the
        auction fails; then open the bids, clear and settle."""
        a = Auction.objects.get(pk=auction)
        if a.state != Auction.State.OPEN:
            return multiple()
        self._skip_to(a.closes_at)
        assert auctions.auction_close(auction=auction)
        if a.by_trustees:
            assert a.threshold is not None and a.release_by is not None
            for i in order[: max(0, min(3, a.threshold + more))]:
                org = self.trustees[i]
                assert self._attempt(
                    trustees.trustee_release,
                    actor=factories.actor_for(org),
                    auction=auction,
                    private_key=self._private(a, org),
                )
            if not auctions.keys_ready(auction):
                assert auctions.auction_bids_open(auction=auction, first=0, last=2**62) == 0
                self._skip_to(a.release_by)
                assert auctions.auction_release_overdue(auction=auction)
                assert Auction.objects.get(pk=auction).state == Auction.State.FAILED
                return multiple()
        auctions.auction_bids_open(auction=auction, first=0, last=2**62)
        assert auctions.auction_clear(auction=auction)
        auctions.auction_settle(auction=auction)  # not if the clearing cancelled it
        return multiple(*Award.objects.filter(auction_id=auction).values_list("pk", flat=True))

    @rule(award=awards, paid=st.booleans())
    def award_resolve(self, award: int, paid: bool) -> None:
        self._attempt(
            auctions.award_confirm_payment if paid else auctions.award_default,
            actor=factories.OPERATOR,
            award=award,
        )

    @precondition(lambda self: hasattr(self, "w"))
    @rule()
    def checkpoint(self) -> None:
        services.ledger_checkpoint_issue()

    @precondition(lambda self: hasattr(self, "w"))
    @invariant()
    def replay_reproduces_the_tables(self) -> None:
        verify_ledger(verifiers=trusted_verifiers())

    @precondition(lambda self: hasattr(self, "w"))
    @invariant()
    def supply_adds_up_in_the_tables(self) -> None:
        for b in Batch.objects.all():
            held = sum(h.tradable + h.escrowed for h in Holding.objects.filter(batch=b))
            assert held + b.retired + b.cancelled == b.issued
        for h in EscrowHold.objects.all():
            assert 0 <= h.remaining <= h.quantity
        assert not Holding.objects.filter(account__kind=Account.Kind.BUFFER, escrowed__gt=0)


@pytest.mark.django_db
def test_random_operation_sequences_replay_to_the_live_state():
    RegistryMachine.TestCase.settings = settings(
        max_examples=25,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    RegistryMachine.TestCase().runTest()
