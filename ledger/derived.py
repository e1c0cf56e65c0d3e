"""Which of the ledger app's tables are derived from the ledger, and so compared with its
replay by ``ledger_verify``, and why the others are not. ``tests/test_derived_tables.py`` fails
when a model is added to any app without being declared here (or in the app's own
``derived.py``)."""

from __future__ import annotations

# Compared row by row with the replay (ledger/verify.py: _compare_tables, the record streams).
COMPARED = {
    "ledger.Organization": "organizations and their roles (org.register)",
    "ledger.Account": "accounts (account.open)",
    "ledger.Methodology": "methodologies (methodology.register)",
    "ledger.Project": "projects (project.register, project.update)",
    "ledger.Batch": "batches with every supply bucket (batch.issue and every credit movement)",
    "ledger.Holding": "balances (every credit movement)",
    "ledger.EscrowHold": "escrow holds (escrow.*)",
    "ledger.Retirement": "retirement records, by the entry that made each",
    "ledger.Cancellation": "cancellation records, by the entry that made each",
    "ledger.Reversal": "reversal records, by the entry that made each",
    "ledger.ProjectDocument": "projects' documents (their hash, kind, title, type, size and "
    "time), by the document.attach entry that made each; the file itself is checked against "
    "that hash each time it is served (ledger/documents.py)",
}
# The ledger itself: checked by the walk, not derived from it.
CHECKED = {
    "ledger.LedgerEntry": "every entry's bytes, chain, MAC and position",
    "ledger.LedgerHead": "size and last hash against the last entry",
    "ledger.MerkleNode": "every stored node recomputed",
    "ledger.TreeHead": "the stored tree's size against the ledger and the signer",
    "ledger.Checkpoint": "every note's signature, size and root",
    "ledger.CheckpointCosignature": "every cosignature by a witness of the policy verified",
}
NOT_DERIVED = {
    "ledger.Membership": "who may act for an organization: access, not registry state; every "
    "action names its actor on the ledger",
    "ledger.ApiKey": "access credentials (hashed); the actor of each entry names the key",
    "ledger.IdempotencyRecord": "stored API responses for retried requests, expired after 48 h",
    "ledger.WebhookEndpoint": "delivery configuration of an organization",
    "ledger.WebhookDelivery": "delivery bookkeeping; what is delivered is the ledger's entries",
    "ledger.OutboxMail": "mail to send after the change it tells of (auction results)",
    "ledger.SignerAlarm": "operational: the signer's refusals, shown to operators",
    "ledger.WitnessRefusal": "operational: witnesses' refusals, shown to operators",
    "ledger.WorkerHeartbeat": "operational: when a worker was last heard from",
}
