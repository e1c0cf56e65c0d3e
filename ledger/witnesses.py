"""Witnesses: independent parties that cosign our checkpoints (C2SP tlog-witness,
tlog-cosignature) and so refuse to vouch for a fork or a rollback.

The log submits each new checkpoint to every witness of its policy
(``LEDGER_WITNESS_POLICY_FILE``, a C2SP tlog-policy file) with a consistency proof from the size
that witness last cosigned, stores the cosignature lines it returns, and publishes them with the
checkpoint. A witness keeps its own state on its own machine: a history rewritten by an insider,
even one re-signed with our real key, cannot be made consistent with what the witness cosigned,
and it answers 409 or 422 instead of cosigning; that refusal is kept here (``WitnessRefusal``)
and shown to operators and auditors. Submission runs in Celery (``LEDGER_WITNESS_QUEUE``) with
retries, never inside an append.

Which checkpoints meet the policy is for each verifier to decide with its own copy of the
witness keys: ``Policy.witnessed`` (the audit package) over the note with its cosignatures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bluecarbon_audit.cosignature import CosignatureError, verify_cosignature
from bluecarbon_audit.policy import Policy, PolicyError, Witnessed
from bluecarbon_audit.witness import WitnessConflictError, WitnessError, witness_add_checkpoint
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Max

from . import selectors
from .models import Checkpoint, CheckpointCosignature, WitnessRefusal

log = logging.getLogger(__name__)

_loaded: tuple[tuple[str, int], Policy] | None = None


def policy() -> Policy | None:
    """The configured witness policy (read again when its file changes), or None."""
    global _loaded
    configured = settings.LEDGER_WITNESS_POLICY_FILE
    if not configured:
        return None
    path = Path(configured)
    try:
        ident = (str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise ImproperlyConfigured(f"LEDGER_WITNESS_POLICY_FILE {path} does not exist") from None
    if _loaded is None or _loaded[0] != ident:
        try:
            _loaded = (ident, Policy.parse(path.read_text()))
        except PolicyError as exc:
            raise ImproperlyConfigured(f"{path}: {exc}") from None
    return _loaded[1]


def cosigned_note(checkpoint: Checkpoint) -> str:
    """The checkpoint's note with every cosignature line stored for it (C2SP signed-note: more
    signature lines after the log's own)."""
    lines = [c.line for c in checkpoint.cosignatures.all().order_by("witness")]
    return checkpoint.note + "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def witnessed(checkpoint: Checkpoint, by: Policy | None = None) -> Witnessed | None:
    """Who cosigned, and whether that meets the policy (None: no policy configured)."""
    p = by or policy()
    if p is None:
        return None
    return p.witnessed(cosigned_note(checkpoint))


@dataclass(frozen=True)
class Outcome:
    witness: str
    status: str  # "cosigned", "already", "refused", "unreachable", "ahead"
    detail: str = ""


def _last_cosigned(witness: str) -> int:
    size = CheckpointCosignature.objects.filter(witness=witness).aggregate(
        m=Max("checkpoint__size")
    )["m"]
    return int(size or 0)


def checkpoint_witness(checkpoint: Checkpoint | None = None) -> list[Outcome]:
    """Submit ``checkpoint`` (default: the latest) to every witness of the policy that has not
    cosigned it. Safe to repeat: a witness that cosigned it already is skipped."""
    p = policy()
    if p is None:
        return []
    checkpoint = checkpoint or Checkpoint.objects.order_by("-size").first()
    if checkpoint is None:
        return []
    done = set(checkpoint.cosignatures.values_list("witness", flat=True))
    outcomes = []
    for name, url in sorted(p.witness_urls.items()):
        if name in done:
            outcomes.append(Outcome(name, "already"))
            continue
        old = _last_cosigned(name)
        for _ in range(2):  # a 409 tells the size the witness holds: once more from there
            if old > checkpoint.size:
                # The witness cosigned a larger tree than our latest checkpoint: the log was
                # rolled back. An alarm, not a skip.
                outcomes.append(
                    _refused(
                        name,
                        checkpoint,
                        409,
                        f"the witness cosigned size {old}, larger than our latest checkpoint "
                        f"({checkpoint.size}): the log was rolled back",
                    )
                )
                break
            proof = (
                selectors.consistency_proof(old, checkpoint.size)
                if 0 < old < checkpoint.size
                else []
            )
            try:
                lines = witness_add_checkpoint(url, old, proof, checkpoint.note)
            except WitnessConflictError as exc:
                if exc.size == old:
                    outcomes.append(_refused(name, checkpoint, 409, str(exc)))
                    break
                old = exc.size
                continue
            except WitnessError as exc:
                if exc.status in (400, 403, 404, 409, 422):
                    outcomes.append(_refused(name, checkpoint, exc.status, str(exc)))
                else:
                    outcomes.append(Outcome(name, "unreachable", str(exc)))
                break
            except OSError as exc:
                outcomes.append(Outcome(name, "unreachable", str(exc)))
                break
            outcomes.append(_store(p, name, checkpoint, lines))
            break
    return outcomes


def _store(p: Policy, name: str, checkpoint: Checkpoint, lines: list[str]) -> Outcome:
    key = p.witnesses[name]
    for line in lines:
        try:
            cosignature = verify_cosignature(key, checkpoint.note, line)
        except CosignatureError:
            continue  # a line for another of its keys, or not for us: not stored
        try:
            with transaction.atomic():
                CheckpointCosignature.objects.create(
                    checkpoint=checkpoint, witness=name, line=line, timestamp=cosignature.timestamp
                )
        except IntegrityError:
            return Outcome(name, "already")
        return Outcome(name, "cosigned")
    return _refused(name, checkpoint, 200, "no cosignature line verified with its key")


def _refused(name: str, checkpoint: Checkpoint, status: int, message: str) -> Outcome:
    log.error(
        "witness %s REFUSED checkpoint of size %d (%d): %s", name, checkpoint.size, status, message
    )
    WitnessRefusal.objects.create(
        witness=name, size=checkpoint.size, status=status, message=message[:2000]
    )
    return Outcome(name, "refused", message)
