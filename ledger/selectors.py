"""Reads. Views, commands, services and the signer call these; nothing here writes. Among them
the stored Merkle tree's roots and proofs, which the API serves, and a retirement certificate
with its proof, which the API and the printable pages show."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .core import merkle, origin
from .core.entry import decode_entry, entry_hash
from .exceptions import NotFound
from .models import Batch, Checkpoint, LedgerEntry, LedgerHead, MerkleNode, Project, Retirement


def ledger_size() -> int:
    head = LedgerHead.objects.filter(pk=1).first()
    return head.size if head else 0


def checkpoint_latest() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-size").first()


@dataclass(frozen=True)
class OriginClaim:
    pk: int
    name: str  # the project's code or the batch's serial
    origin_registry: str  # as stored
    origin_id: str  # as stored
    origin_rule: int


@dataclass(frozen=True)
class NearDuplicate:
    kind: str  # "project" or "batch"
    origin_registry: str  # the registry under origin rule 1
    key: str  # the id under origin rule 1
    claims: tuple[OriginClaim, ...]  # two or more, in id order


def origin_near_duplicates() -> list[NearDuplicate]:
    """Projects (and batches) whose origin is one under origin rule 1 although spelled apart:
    rows stored before the rule (``origin_rule`` 0, no key) are keyed here as the rule would
    have keyed them, and grouped with each other and with the keyed rows. The database keeps
    keyed rows apart already, so every group holds at least one row from before the rule."""
    groups: dict[tuple[str, str, str], list[OriginClaim]] = {}
    projects = Project.objects.order_by("pk").values_list(
        "pk", "code", "origin_registry", "origin_id", "origin_key", "origin_rule"
    )
    for pk, code, reg, oid, key, rule in projects.iterator():
        slot = (reg, key) if key is not None else origin.legacy_project_key(reg, oid)
        claim = OriginClaim(pk, code, reg, oid, rule)
        groups.setdefault(("project", *slot), []).append(claim)
    batches = (
        Batch.objects.filter(origin_tx_id__isnull=False)
        .order_by("pk")
        .values_list(
            "pk", "serial", "origin_registry", "origin_tx_id", "origin_tx_key", "origin_rule"
        )
    )
    for pk, serial, reg, tx_or_none, key, rule in batches.iterator():
        tx = tx_or_none or ""  # never None here (filtered above)
        slot = (reg, key) if key is not None else origin.legacy_tx_key(reg, tx)
        claim = OriginClaim(pk, serial, reg, tx, rule)
        groups.setdefault(("batch", *slot), []).append(claim)
    return [
        NearDuplicate(kind, reg, key, tuple(claims))
        for (kind, reg, key), claims in groups.items()
        if len(claims) > 1
    ]


# ---- the stored Merkle tree ------------------------------------------------------------------


def node_getter(ids: Iterable[tuple[int, int]]) -> merkle.NodeGetter:
    wanted = list(set(ids))
    found: dict[tuple[int, int], bytes] = {}
    # Fetch per level: a handful of queries, each an index range scan.
    by_level: dict[int, list[int]] = {}
    for level, index in wanted:
        by_level.setdefault(level, []).append(index)
    for level, indexes in by_level.items():
        for n in MerkleNode.objects.filter(level=level, index__in=indexes).values_list(
            "index", "hash"
        ):
            found[(level, n[0])] = bytes(n[1])

    def get(level: int, index: int) -> bytes:
        try:
            return found[(level, index)]
        except KeyError:
            raise LookupError(f"merkle node ({level}, {index}) is not stored") from None

    return get


def tree_root(size: int) -> bytes:
    """The RFC 9162 root of the first ``size`` entries, from stored nodes."""
    return merkle.Frontier.from_nodes(size, node_getter(merkle.frontier_node_ids(size))).root()


def inclusion_proof(index: int, size: int) -> list[bytes]:
    return merkle.inclusion_proof(index, size, node_getter(merkle.inclusion_node_ids(index, size)))


def inclusion_proof_leaf(index: int) -> bytes:
    """The stored leaf hash of entry ``index`` (level 0 of the stored tree)."""
    return node_getter([(0, index)])(0, index)


def consistency_proof(old_size: int, new_size: int) -> list[bytes]:
    return merkle.consistency_proof(
        old_size, new_size, node_getter(merkle.consistency_node_ids(old_size, new_size))
    )


# ---- retirement certificates -----------------------------------------------------------------


@dataclass(frozen=True)
class Inclusion:
    """An entry's inclusion proof (RFC 9162 §2.1.3.1) in the tree of a signed checkpoint."""

    checkpoint: Checkpoint
    hashes: list[bytes]


@dataclass(frozen=True)
class RetirementCertificate:
    """Everything needed to check a retirement offline: the record, its ``credit.retire``
    entry exactly as stored, and its inclusion proof against the latest signed checkpoint
    (None until a checkpoint covers the entry)."""

    retirement: Retirement  # with its batch and project
    entry: bytes
    inclusion: Inclusion | None

    @property
    def entry_time(self) -> str:
        return decode_entry(self.entry).time

    @property
    def entry_hash(self) -> bytes:
        """SHA-256 of the entry: the chain hash."""
        return entry_hash(self.entry)

    @property
    def leaf_hash(self) -> bytes:
        """SHA-256(0x00 || entry): the RFC 9162 leaf."""
        return merkle.leaf_hash(self.entry)


def retirement_certificate(*, certificate: str) -> RetirementCertificate:
    """A retirement certificate, whoever retired it (registries publish retirements)."""
    retirement = (
        Retirement.objects.select_related("batch__project").filter(certificate=certificate).first()
    )
    if retirement is None:
        raise NotFound(f"retirement certificate {certificate} not found")
    entry = bytes(LedgerEntry.objects.get(seq=retirement.entry_seq).body)
    checkpoint = checkpoint_latest()
    inclusion = None
    if checkpoint is not None and checkpoint.size > retirement.entry_seq:
        hashes = inclusion_proof(retirement.entry_seq, checkpoint.size)
        inclusion = Inclusion(checkpoint, hashes)
    return RetirementCertificate(retirement, entry, inclusion)
