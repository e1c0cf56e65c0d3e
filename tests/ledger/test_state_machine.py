"""Random sequences of registry operations. After every step the ledger, replayed from
sequence 0, must reproduce the live tables exactly and the supply invariants must hold; a
refused operation must leave the ledger as it was."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
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

from ledger import services, signer
from ledger.exceptions import DomainError
from ledger.models import Account, Batch, EscrowHold, Holding, LedgerEntry
from ledger.signing import trusted_verifiers
from ledger.verify import verify_ledger
from tests import factories

amounts = st.one_of(st.integers(1, 3_000), st.integers(1, 2_000_000))
# Mostly the developer's account, which receives every issuance, so moves usually succeed.
senders = st.sampled_from([0, 0, 0, 1, 2, 3])


class RegistryMachine(RuleBasedStateMachine):
    batches = Bundle("batches")
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        # Each example runs in a savepoint that teardown rolls back: a fresh, empty ledger,
        # which the checkpoint signer must not take for a rollback of the one it signed.
        signer.state_reset()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.years: dict[int, int] = {}

    def teardown(self) -> None:
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

    @rule(target=batches, second=st.booleans(), qty=amounts, share=st.integers(0, 10_000))
    def issue(self, second: bool, qty: int, share: int):
        project = self.second if second else self.w.project
        year = self.years.get(project.pk, 2000)
        self.years[project.pk] = year + 1
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
