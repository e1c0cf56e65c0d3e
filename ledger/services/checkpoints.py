"""The stored Merkle tree and signed checkpoints over the ledger (not a write of registry state:
no entry is appended).
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from .. import jobs, locks, selectors
from ..core import merkle
from ..models import Checkpoint, LedgerEntry, MerkleNode
from ..signer import checkpoint_sign_new


def tree_extend(*, batch_size: int = 5000) -> int:
    """Hash new entries into the stored Merkle tree. Returns the new tree size."""
    with transaction.atomic():
        head = locks.tree_head_lock()
        frontier = merkle.Frontier.from_nodes(
            head.size, selectors.node_getter(merkle.frontier_node_ids(head.size))
        )
        while True:
            rows = list(
                LedgerEntry.objects.filter(seq__gte=frontier.size)
                .order_by("seq")
                .values_list("seq", "body")[:batch_size]
            )
            if not rows:
                break
            nodes: list[MerkleNode] = []
            for seq, body in rows:
                assert seq == frontier.size, "ledger sequence has a gap"
                for level, index, digest in frontier.append(merkle.leaf_hash(bytes(body))):
                    nodes.append(MerkleNode(level=level, index=index, hash=digest))
            MerkleNode.objects.bulk_create(nodes, batch_size=2000)
        if frontier.size != head.size:
            head.size = frontier.size
            head.save(update_fields=["size"])
        return frontier.size


def ledger_checkpoint_issue() -> Checkpoint | None:
    """Extend the stored tree (it serves proofs) and have the signer sign a checkpoint over
    every committed entry, unless the latest one already covers it. The signer computes what it
    signs from its own state and the new entries only (``ledger/signer.py``); it raises
    ``SignerRefused`` when the database does not extend what it signed. Safe to run twice, or
    in parallel."""
    # Up to the size the stored tree reached: entries committed meanwhile wait for the next
    # checkpoint, which the tree will cover too (else its proofs could not be served).
    size = tree_extend()
    checkpoint = checkpoint_sign_new(up_to=size)
    if checkpoint is not None and settings.LEDGER_WITNESS_POLICY_FILE:
        transaction.on_commit(_witnesses_soon, robust=True)
    return checkpoint


def _witnesses_soon() -> None:
    """After a new checkpoint: have the witnesses cosign it, in the background."""
    jobs.send(jobs.WITNESS_SUBMIT, queue=settings.LEDGER_WITNESS_QUEUE or None)
