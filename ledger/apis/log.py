"""The public log: how an outsider checks us. Entries as a cursor feed with their exact bytes,
signed checkpoints exactly as stored, inclusion and consistency proofs, verifier keys.

No key is needed (throttled per address). The feed is the hot path (auditors and registries
follow it): it reads rows with one SQL query and writes the JSON itself."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from django.db import connection
from django.http import HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from .. import selectors, services
from ..core import merkle
from ..core.replay import ENTRY_TYPES
from ..exceptions import InvalidInput, NotFound, Unprocessable
from ..models import Checkpoint, TreeHead
from ..signing import trusted_verifiers
from .base import PublicApi

_ENTRY = inline_serializer(
    "LedgerEntry",
    {
        "seq": serializers.IntegerField(),
        "type": serializers.CharField(),
        "time": serializers.CharField(),
        "canonical": serializers.CharField(help_text="the entry's exact RFC 8785 bytes (UTF-8)"),
        "entry_sha256": serializers.CharField(help_text="hex; the next entry's prev"),
        "leaf_hash": serializers.CharField(help_text="hex; RFC 9162 leaf hash"),
    },
)
_FEED = inline_serializer(
    "LedgerFeed",
    {
        "entries": _ENTRY.__class__(many=True),
        "next_after": serializers.IntegerField(allow_null=True),
        "tree_size": serializers.IntegerField(),
    },
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _int_param(request: Request, name: str, default: int | None, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise InvalidInput(f"{name} is required", detail={name: "required"})
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer", detail={name: "invalid"}) from None
    if not lo <= value <= hi:
        raise InvalidInput(f"{name} must be between {lo} and {hi}", detail={name: "out_of_range"})
    return value


def _entry_json(seq: int, body: bytes, type_: str) -> str:
    # The time is read out of the canonical bytes without parsing them: "time":"…" is fixed
    # length (format_time) and present exactly once among the top-level members.
    text = body.decode()
    at = text.rfind('"time":"')
    time = text[at + 8 : at + 35] if at >= 0 else ""
    return json.dumps(
        {
            "seq": seq,
            "type": type_,
            "time": time,
            "canonical": text,
            "entry_sha256": hashlib.sha256(body).hexdigest(),
            "leaf_hash": merkle.leaf_hash(body).hex(),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


MAX_INT = 2**62


class LedgerEntriesApi(PublicApi):
    @extend_schema(
        operation_id="ledger_entries_list",
        tags=["ledger"],
        parameters=[
            OpenApiParameter("after", int, description="return entries with seq > after"),
            OpenApiParameter("limit", int, description="1 to 1000, default 100"),
            OpenApiParameter("type", str, enum=sorted(ENTRY_TYPES)),
        ],
        responses={200: _FEED},
    )
    def get(self, request: Request) -> HttpResponse:
        after = _int_param(request, "after", -1, -1, MAX_INT)
        limit = _int_param(request, "limit", 100, 1, 1000)
        type_ = request.query_params.get("type")
        if type_ is not None and type_ not in ENTRY_TYPES:
            raise InvalidInput("unknown entry type", detail={"type": "invalid_choice"})
        sql = "SELECT seq, body, type FROM ledger_ledgerentry WHERE seq > %s"
        params: list[Any] = [after]
        if type_:
            sql += " AND type = %s"
            params.append(type_)
        sql += " ORDER BY seq LIMIT %s"
        params.append(limit)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        items = ",".join(_entry_json(seq, bytes(body), t) for seq, body, t in rows)
        next_after = rows[-1][0] if len(rows) == limit else None
        payload = (
            f'{{"entries":[{items}],"next_after":{json.dumps(next_after)},'
            f'"tree_size":{selectors.ledger_size()}}}'
        )
        return HttpResponse(payload, content_type="application/json")


class LedgerEntryDetailApi(PublicApi):
    @extend_schema(operation_id="ledger_entries_retrieve", tags=["ledger"], responses={200: _ENTRY})
    def get(self, request: Request, seq: int) -> HttpResponse:
        if seq > MAX_INT:
            raise NotFound(f"entry {seq} not found")
        with connection.cursor() as cursor:
            cursor.execute("SELECT seq, body, type FROM ledger_ledgerentry WHERE seq = %s", [seq])
            row = cursor.fetchone()
        if row is None:
            raise NotFound(f"entry {seq} not found")
        return HttpResponse(
            _entry_json(row[0], bytes(row[1]), row[2]), content_type="application/json"
        )


def _note_response(checkpoint: Checkpoint | None, what: str) -> HttpResponse:
    if checkpoint is None:
        raise NotFound(f"no {what}")
    return HttpResponse(checkpoint.note, content_type="text/plain; charset=utf-8")


class CheckpointLatestApi(PublicApi):
    @extend_schema(
        operation_id="ledger_checkpoint_latest",
        tags=["ledger"],
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request: Request) -> HttpResponse:
        return _note_response(selectors.checkpoint_latest(), "checkpoint yet")


class CheckpointDetailApi(PublicApi):
    @extend_schema(
        operation_id="ledger_checkpoint_retrieve",
        tags=["ledger"],
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request: Request, size: int) -> HttpResponse:
        if size > MAX_INT:
            raise NotFound(f"no checkpoint at size {size}")
        return _note_response(
            Checkpoint.objects.filter(size=size).first(), f"checkpoint at size {size}"
        )


class CheckpointListApi(PublicApi):
    class OutputSerializer(serializers.Serializer):
        size = serializers.IntegerField()
        root = serializers.SerializerMethodField()
        key_name = serializers.CharField()
        key_hash = serializers.CharField()
        created_at = serializers.DateTimeField()
        note = serializers.CharField()

        def get_root(self, obj: Checkpoint) -> str:
            return _b64(bytes(obj.root))

    @extend_schema(
        operation_id="ledger_checkpoints_list",
        tags=["ledger"],
        parameters=[OpenApiParameter("after", int), OpenApiParameter("limit", int)],
        responses={
            200: inline_serializer(
                "CheckpointPage",
                {
                    "checkpoints": OutputSerializer(many=True),
                    "next_after": serializers.IntegerField(allow_null=True),
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        after = _int_param(request, "after", 0, 0, MAX_INT)
        limit = _int_param(request, "limit", 100, 1, 1000)
        rows = list(Checkpoint.objects.filter(size__gt=after).order_by("size")[:limit])
        return Response(
            {
                "checkpoints": self.OutputSerializer(rows, many=True).data,
                "next_after": rows[-1].size if len(rows) == limit else None,
            }
        )


def _tree_size() -> int:
    head = TreeHead.objects.filter(pk=1).first()
    return head.size if head else 0


class InclusionProofApi(PublicApi):
    @extend_schema(
        operation_id="ledger_proof_inclusion",
        tags=["ledger"],
        parameters=[
            OpenApiParameter("seq", int, required=True),
            OpenApiParameter("tree_size", int, description="default: the latest checkpoint's"),
        ],
        responses={
            200: inline_serializer(
                "InclusionProof",
                {
                    "seq": serializers.IntegerField(),
                    "tree_size": serializers.IntegerField(),
                    "leaf_hash": serializers.CharField(),
                    "proof": serializers.ListField(child=serializers.CharField()),
                    "root": serializers.CharField(),
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        latest = selectors.checkpoint_latest()
        seq = _int_param(request, "seq", None, 0, MAX_INT)
        size = _int_param(request, "tree_size", latest.size if latest else 0, 1, MAX_INT)
        if size > _tree_size():
            raise Unprocessable(
                f"tree size {size} is beyond the checkpointed tree ({_tree_size()})",
                detail={"tree_size": "beyond_tree"},
            )
        if seq >= size:
            raise Unprocessable(
                f"entry {seq} is not in a tree of size {size}", detail={"seq": "beyond_tree"}
            )
        leaf = services.inclusion_proof_leaf(seq)
        return Response(
            {
                "seq": seq,
                "tree_size": size,
                "leaf_hash": _b64(leaf),
                "proof": [_b64(h) for h in services.inclusion_proof(seq, size)],
                "root": _b64(services.tree_root(size)),
            }
        )


class ConsistencyProofApi(PublicApi):
    @extend_schema(
        operation_id="ledger_proof_consistency",
        tags=["ledger"],
        parameters=[
            OpenApiParameter("first", int, required=True),
            OpenApiParameter("second", int, required=True),
        ],
        responses={
            200: inline_serializer(
                "ConsistencyProof",
                {
                    "first": serializers.IntegerField(),
                    "second": serializers.IntegerField(),
                    "proof": serializers.ListField(child=serializers.CharField()),
                    "first_root": serializers.CharField(),
                    "second_root": serializers.CharField(),
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        first = _int_param(request, "first", None, 1, MAX_INT)
        second = _int_param(request, "second", None, 1, MAX_INT)
        if first > second:
            raise InvalidInput("first must not exceed second", detail={"first": "out_of_range"})
        if second > _tree_size():
            raise Unprocessable(
                f"tree size {second} is beyond the checkpointed tree ({_tree_size()})",
                detail={"second": "beyond_tree"},
            )
        return Response(
            {
                "first": first,
                "second": second,
                "proof": [_b64(h) for h in services.consistency_proof(first, second)],
                "first_root": _b64(services.tree_root(first)),
                "second_root": _b64(services.tree_root(second)),
            }
        )


class VerifierKeysApi(PublicApi):
    @extend_schema(
        operation_id="ledger_verifier_keys",
        tags=["ledger"],
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request: Request) -> HttpResponse:
        text = "".join(v.to_string() + "\n" for v in trusted_verifiers())
        return HttpResponse(text, content_type="text/plain; charset=utf-8")


urlpatterns = [
    path("ledger/entries", LedgerEntriesApi.as_view(), name="ledger-entries"),
    path("ledger/entries/<int:seq>", LedgerEntryDetailApi.as_view(), name="ledger-entry"),
    path("ledger/checkpoints", CheckpointListApi.as_view(), name="ledger-checkpoints"),
    path("ledger/checkpoints/latest", CheckpointLatestApi.as_view(), name="checkpoint-latest"),
    path("ledger/checkpoints/<int:size>", CheckpointDetailApi.as_view(), name="checkpoint"),
    path("ledger/proofs/inclusion", InclusionProofApi.as_view(), name="proof-inclusion"),
    path("ledger/proofs/consistency", ConsistencyProofApi.as_view(), name="proof-consistency"),
    path("ledger/verifier-keys", VerifierKeysApi.as_view(), name="verifier-keys"),
]
