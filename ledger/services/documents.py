"""A project's documents: the monitoring, verification and validation reports its registry
attaches, each a ``document.attach`` entry carrying the file's SHA-256."""

from __future__ import annotations

import hashlib

from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import documents, locks, records, validation
from ..actors import Actor
from ..exceptions import Conflict, ErrorCode, NotFound
from ..models import DocumentKind, Project, ProjectDocument
from .append import _ledger_append


def _repeat_or_conflict(found: ProjectDocument, kind: str, title: str) -> ProjectDocument:
    """The same file attached to the same project again: the same kind and title is a repeat
    (no new entry), anything else a conflict."""
    if found.kind == kind and found.title == title:
        return found
    raise Conflict(
        f"this file is already attached to the project as {found.get_kind_display().lower()} "
        f"{found.title!r}",
        code=ErrorCode.DOCUMENT_EXISTS,
        detail={"document": found.pk, "sha256": found.sha256},
    )


@transaction.atomic
def project_document_attach(
    *,
    actor: Actor,
    project: int,
    kind: str,
    title: str,
    content: bytes,
    media_type: str,
) -> ProjectDocument:
    """Attach a file to a project, as its registry (or an operator). The file is stored by its
    SHA-256 before anything is written to the database (``documents.store``): a crash before
    the commit leaves at most a file no row names, which the same attach reuses."""
    pid = validation.object_id(project)
    p = Project.objects.filter(pk=pid).first() if pid is not None else None
    if p is None or not actor.may_act_for(p.registry_id):
        raise NotFound(f"project {project} not found")
    kind = validation.choice(kind, "kind", DocumentKind.values)
    title = validation.text(title, "title", max_length=300)
    media = documents.check(content, media_type)
    content = bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    found = ProjectDocument.objects.filter(project=p, sha256=digest).first()
    if found is not None:
        repeat = _repeat_or_conflict(found, kind, title)
        documents.store(content)  # puts back a copy lost or damaged since (a restore, say)
        return repeat
    documents.store(content)
    now = timezone.now()
    # Holding the head from here on: a concurrent attach of the same file waits for it, and
    # its row is then in our way (the unique constraint), never a second entry.
    head = locks.ledger_head_lock()
    try:
        with transaction.atomic():
            doc = ProjectDocument.objects.create(
                entry_seq=head[0],
                project=p,
                kind=kind,
                title=title,
                media_type=media,
                size=len(content),
                sha256=digest,
                attached_at=now,
            )
    except IntegrityError:
        found = ProjectDocument.objects.filter(project=p, sha256=digest).first()
        if found is None:
            raise
        return _repeat_or_conflict(found, kind, title)
    _ledger_append(
        type="document.attach",
        actor=actor,
        at=now,
        head=head,
        data={"document": records.document_record(doc)},
    )
    return doc
