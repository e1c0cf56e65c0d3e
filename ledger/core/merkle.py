"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.merkle import *  # noqa: F403
from bluecarbon_audit.merkle import (  # noqa: F401
    Frontier,
    NodeGetter,
    ProofError,
    consistency_node_ids,
    consistency_proof,
    frontier_node_ids,
    inclusion_node_ids,
    inclusion_proof,
    leaf_hash,
    root_from_inclusion_proof,
    root_of,
    verify_consistency,
    verify_inclusion,
)
