"""``Idempotency-Key`` for every POST: the same key and body replay the stored response and
apply nothing twice; the same key with another body is refused.

The record is inserted in the same transaction as the effect. Two requests racing with one key
serialize on its unique index: the second waits for the first to commit, then finds the record
and replays it. Failed requests store nothing (they changed nothing), so a retry runs again.

Keys are scoped per organization, as payment APIs scope them per account: a retry sent with
another key of the same organization (rotated meanwhile) replays; it does not apply twice.
Records are forgotten after 48 hours (``ledger/operations.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from ..exceptions import Conflict, ErrorCode, InvalidInput, Unprocessable
from ..models import IdempotencyRecord
from .auth import ApiKeyPrincipal

HEADER = "Idempotency-Key"


def _owner(request: Request) -> str:
    user: Any = request.user
    if isinstance(user, ApiKeyPrincipal):
        return f"org:{user.key.organization_id}"
    return f"user:{user.pk}"


def _value(value: Any) -> Any:
    """A body value JSON cannot write: an uploaded file by its bytes' hash (a multipart POST;
    its name alone would let another file replay this one's response), else its text."""
    if isinstance(value, UploadedFile):
        digest = hashlib.sha256()
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
        return {"file": value.name, "sha256": digest.hexdigest()}
    return str(value)


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=_value)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.request_sha256 != fingerprint:
        raise Unprocessable(
            "this Idempotency-Key was used with a different request",
            code=ErrorCode.IDEMPOTENCY_MISMATCH,
        )
    response = Response(record.response, status=record.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(request: Request, handler: Callable[[], Response]) -> Response:
    """Run ``handler`` (which calls one service) at most once per Idempotency-Key."""
    key = request.headers.get(HEADER)
    if key is None:
        with transaction.atomic(durable=True):
            return handler()
    if not 1 <= len(key) <= 255:
        raise InvalidInput(
            "Idempotency-Key must be 1 to 255 characters", detail={"Idempotency-Key": "invalid"}
        )
    # HTTP carries header values as bytes that servers decode as Latin-1, so a UTF-8 key
    # arrives garbled and would not match the same key sent by another client library.
    if not all(" " <= c <= "~" for c in key):
        raise InvalidInput(
            "Idempotency-Key must be printable ASCII (letters, digits, punctuation, spaces); "
            "use a UUID or your own ASCII transaction id",
            detail={"Idempotency-Key": "not_ascii"},
        )
    owner, fingerprint = _owner(request), _fingerprint(request)
    with transaction.atomic(durable=True):
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    owner=owner, key=key, request_sha256=fingerprint, status_code=0, response={}
                )
        except IntegrityError:
            record = None
        if record is None:
            existing = IdempotencyRecord.objects.filter(owner=owner, key=key).first()
            if existing is None or existing.status_code == 0:
                raise Conflict(
                    "a request with this Idempotency-Key is in progress",
                    code=ErrorCode.IDEMPOTENCY_IN_PROGRESS,
                )
            return _replay(existing, fingerprint)
        response = handler()
        record.status_code = response.status_code
        # As the client gets it (DRF's encoder): a serializer's method field may hold a
        # datetime (a trustee auction's release_by), which the column's encoder refuses: a 500.
        record.response = json.loads(json.dumps(response.data, cls=JSONEncoder))
        record.save(update_fields=["status_code", "response"])
        return response
