"""Every write to the registry, one module per aggregate: organizations and accounts, methodologies
and projects, projects' documents, issuance, credits (transfers, retirements, cancellations,
reversals), escrow, checkpoints, access (API keys). Each public function validates, locks (in
the order given in ``locks.py``), changes the derived tables and appends exactly one ledger
entry (``append.py``: the only writer of entries), all in one transaction: either the change and
its entry are both committed, or neither is.

Each service ends alike: it creates or changes its rows, then appends its entry with the
rows' records (``records.py``). What differs is the entry's type and record; the append itself
is ``append.py``'s, once.

Quantities are integers of kgCO2e. Errors are ``DomainError`` subclasses with stable codes;
a function that raises has written nothing. Callers use the package (``services.credit_transfer``);
the modules import each other in one direction: ``append`` and ``checks`` below the rest.
"""

from __future__ import annotations

from .access import apikey_create, apikey_revoke
from .append import EntryRow, entry_body, entry_mac, ledger_append, ledger_head_lock
from .checkpoints import ledger_checkpoint_issue, tree_extend
from .credits import (
    Transfer,
    credit_cancel,
    credit_retire,
    credit_transfer,
    credit_transfer_many,
    reversal_record,
)
from .documents import project_document_attach
from .escrow import LISTING_PREFIX, MANAGED_PREFIX, escrow_deliver, escrow_hold, escrow_release
from .issuance import batch_issue
from .organizations import account_open, organization_register
from .projects import methodology_register, project_register, project_update

__all__ = [
    "LISTING_PREFIX",
    "MANAGED_PREFIX",
    "EntryRow",
    "Transfer",
    "account_open",
    "apikey_create",
    "apikey_revoke",
    "batch_issue",
    "credit_cancel",
    "credit_retire",
    "credit_transfer",
    "credit_transfer_many",
    "entry_body",
    "entry_mac",
    "escrow_deliver",
    "escrow_hold",
    "escrow_release",
    "ledger_append",
    "ledger_checkpoint_issue",
    "ledger_head_lock",
    "methodology_register",
    "organization_register",
    "project_document_attach",
    "project_register",
    "project_update",
    "reversal_record",
    "tree_extend",
]
