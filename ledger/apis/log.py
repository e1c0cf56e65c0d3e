"""The public log: how an outsider checks us. Entries as a cursor feed with their exact bytes,
signed checkpoints exactly as stored, inclusion and consistency proofs, and the verifier keys.

No key is needed (``PublicApi``: throttled per address, or per key when one is sent). Nothing
here writes: the Merkle tree and checkpoints grow in ``services.ledger_checkpoint_issue`` (a
task runs it about a second after each write), and proofs are served only for tree sizes the
stored tree already covers.

The feed is the hot path (auditors, registries and mirrors follow it): one SQL query per page,
and the JSON is written with orjson instead of a serializer and renderer (a serializer costs
more per entry than everything else together). Its schema is still declared, with inline
serializers, so the OpenAPI document and the bytes agree (tests/api/test_log_feed.py checks).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import orjson
from django.db import connection
from django.http import HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from .. import entry_types, selectors
from ..core import merkle
from ..exceptions import InvalidInput, NotFound, Unprocessable
from ..models import Checkpoint, TreeHead
from ..signing import trusted_verifiers
from ..witnesses import cosigned_note, witnessed
from ..witnesses import policy as witness_policy
from .base import MAX_ID, ErrorSerializer, PublicApi

FEED_MAX_LIMIT = 1000
FEED_DEFAULT_LIMIT = 100
# Entries, checkpoints and proofs between fixed sizes never change (the ledger, the tree and
# the checkpoints are append-only, enforced by triggers): caches and CDNs may keep them.
IMMUTABLE = "public, max-age=31536000, immutable"
# ASCII digits only: int() would also take " 7", "1_000" and other scripts' digits.
_INTEGER = re.compile(r"-?[0-9]{1,19}")


# ---- schema pieces -------------------------------------------------------------------------

_ENTRY = inline_serializer(
    "LedgerEntry",
    {
        "seq": serializers.IntegerField(min_value=0),
        # Not an enum: a follower must skip entry types added after it was written.
        "type": serializers.CharField(help_text="e.g. credit.transfer; see docs/ledger-format.md"),
        "time": serializers.DateTimeField(help_text="the entry's own time (UTC, microseconds)"),
        "canonical": serializers.CharField(
            help_text="the entry's exact RFC 8785 bytes, as text: encode it as UTF-8 to hash it"
        ),
        "entry_sha256": serializers.CharField(
            help_text="hex SHA-256 of the bytes: the chain hash, the next entry's prev"
        ),
        "leaf_hash": serializers.CharField(
            help_text="hex SHA-256(0x00 || bytes): the RFC 9162 leaf hash"
        ),
    },
)
_FEED = inline_serializer(
    "LedgerFeed",
    {
        "entries": _ENTRY.__class__(many=True),
        "next_after": serializers.IntegerField(
            allow_null=True,
            help_text="the page's last seq when more entries follow: pass it as after; null "
            "at the end of the ledger (for now: poll again after the last seq you hold)",
        ),
        "tree_size": serializers.IntegerField(
            help_text="entries in the ledger when the page was read (> every seq on it)"
        ),
    },
)
_INCLUSION = inline_serializer(
    "InclusionProof",
    {
        "seq": serializers.IntegerField(),
        "tree_size": serializers.IntegerField(),
        "leaf_hash": serializers.CharField(help_text="base64 RFC 9162 leaf hash of the entry"),
        "proof": serializers.ListField(
            child=serializers.CharField(), help_text="base64 hashes, bottom up (RFC 9162 §2.1.3)"
        ),
        "root": serializers.CharField(help_text="base64 root of the tree of tree_size"),
    },
)
_CONSISTENCY = inline_serializer(
    "ConsistencyProof",
    {
        "first": serializers.IntegerField(),
        "second": serializers.IntegerField(),
        "proof": serializers.ListField(
            child=serializers.CharField(), help_text="base64 hashes (RFC 9162 §2.1.4)"
        ),
        "first_root": serializers.CharField(help_text="base64"),
        "second_root": serializers.CharField(help_text="base64"),
    },
)


def _errors(*statuses: int) -> dict[int, Any]:
    # The schema adds the errors every public operation shares (schema.AutoSchema).
    return {status: ErrorSerializer for status in statuses}


def _integer(minimum: int, maximum: int = MAX_ID) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def _path_integer(name: str) -> OpenApiParameter:
    return OpenApiParameter(name, _integer(0), OpenApiParameter.PATH)


class PlainTextRenderer(BaseRenderer):
    """Lets a client that asks for ``Accept: text/plain`` (a Go note client, curl with that
    header) past content negotiation instead of getting 406; successful answers are written by
    the views themselves. Errors come out as their JSON text."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> bytes:
        if isinstance(data, str):
            return data.encode()
        return orjson.dumps(data)


class TextApi(PublicApi):
    renderer_classes = [JSONRenderer, PlainTextRenderer]


def _text(body: str, *, immutable: bool = False) -> HttpResponse:
    response = HttpResponse(body, content_type="text/plain; charset=utf-8")
    if immutable:
        response["Cache-Control"] = IMMUTABLE
    return response


def _json(data: Any, *, immutable: bool = False) -> Response:
    response = Response(data)
    if immutable:
        response["Cache-Control"] = IMMUTABLE
    return response


# ---- parameters ----------------------------------------------------------------------------


def _int_param(request: Request, name: str, default: int | None, lo: int, hi: int) -> int:
    """A query parameter as an integer in [lo, hi]; 400 (never 500) for anything else, an
    empty value (``?after=``) and a repeated one (``?after=1&after=2``) included."""
    given = request.query_params.getlist(name)
    if len(given) > 1:
        raise InvalidInput(f"{name} is given more than once", detail={name: "repeated"})
    raw = given[0] if given else None
    if raw is None:
        if default is None:
            raise InvalidInput(f"{name} is required", detail={name: "required"})
        return default
    if not _INTEGER.fullmatch(raw):
        raise InvalidInput(f"{name} must be an integer", detail={name: "invalid"})
    value = int(raw)
    if not lo <= value <= hi:
        raise InvalidInput(f"{name} must be between {lo} and {hi}", detail={name: "out_of_range"})
    return value


def _path_int(raw: str, what: str) -> int:
    """A path segment that should be a seq or a size: anything else names nothing (404)."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) >= MAX_ID:
        raise NotFound(f"no {what} {raw}")
    return int(raw)


# ---- entries -------------------------------------------------------------------------------


def entry_item(seq: int, body: bytes, type_: str) -> dict[str, Any]:
    """An entry as the feed shows it (also the benchmark's reference for the view's work)."""
    text = body.decode()
    # The entry's time without parsing it: RFC 8785 sorts members, so the top-level "time"
    # member is the last '"time":"' in the text ("data", where a nested one could sit, sorts
    # before it; inside a string the quotes would be escaped).
    start = text.rfind('"time":"') + 8
    return {
        "seq": seq,
        "type": type_,
        "time": text[start : text.index('"', start)],
        "canonical": text,
        "entry_sha256": hashlib.sha256(body).hexdigest(),
        "leaf_hash": merkle.leaf_hash(body).hex(),
    }


class LedgerEntriesApi(PublicApi):
    @extend_schema(
        operation_id="ledger_entries_list",
        summary="Follow the ledger",
        description="Every entry in sequence order, with its exact bytes and hashes. Start with "
        "after=-1 and pass next_after as the next after until it is null. Repeat type to get "
        "several types (the other entries are skipped, seq numbers then have gaps).",
        tags=["ledger"],
        parameters=[
            OpenApiParameter(
                "after", _integer(-1), description="only entries with seq > after (default -1)"
            ),
            OpenApiParameter(
                "limit", _integer(1, FEED_MAX_LIMIT), description="page size (default 100)"
            ),
            OpenApiParameter(
                "type", str, enum=sorted(entry_types.all_types()), many=True, explode=True
            ),
        ],
        responses={200: _FEED, **_errors(400)},
    )
    def get(self, request: Request) -> HttpResponse:
        after = _int_param(request, "after", -1, -1, MAX_ID)
        limit = _int_param(request, "limit", FEED_DEFAULT_LIMIT, 1, FEED_MAX_LIMIT)
        types = sorted(set(request.query_params.getlist("type")))
        known = entry_types.all_types()
        if any(t not in known for t in types):
            raise InvalidInput(
                f"type must be one of {', '.join(sorted(known))}",
                detail={"type": "invalid_choice"},
            )
        sql = "SELECT seq, body, type FROM ledger_ledgerentry WHERE seq > %s"
        params: list[Any] = [after]
        if types:
            sql += f" AND type IN ({', '.join(['%s'] * len(types))})"
            params += types
        # One row more than the page: next_after is null exactly when nothing follows.
        sql += " ORDER BY seq LIMIT %s"
        params.append(limit + 1)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        # Read after the rows: entries commit in seq order under the head lock, so the size
        # seen now covers every entry on the page.
        size = selectors.ledger_size()
        payload = {
            "entries": [entry_item(seq, bytes(body), t) for seq, body, t in rows],
            "next_after": rows[-1][0] if more else None,
            "tree_size": size,
        }
        return HttpResponse(orjson.dumps(payload), content_type="application/json")


class LedgerEntryDetailApi(PublicApi):
    @extend_schema(
        operation_id="ledger_entries_retrieve",
        summary="One ledger entry",
        tags=["ledger"],
        parameters=[_path_integer("seq")],
        responses={200: _ENTRY, **_errors(404)},
    )
    def get(self, request: Request, seq: str) -> HttpResponse:
        number = _path_int(seq, "ledger entry")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT seq, body, type FROM ledger_ledgerentry WHERE seq = %s", [number]
            )
            row = cursor.fetchone()
        if row is None:
            raise NotFound(f"no ledger entry {number} (yet)")
        response = HttpResponse(
            orjson.dumps(entry_item(row[0], bytes(row[1]), row[2])),
            content_type="application/json",
        )
        response["Cache-Control"] = IMMUTABLE
        return response


# ---- checkpoints and keys -------------------------------------------------------------------


_NOTE = {(200, "text/plain"): OpenApiTypes.STR}


class CheckpointLatestApi(TextApi):
    @extend_schema(
        operation_id="ledger_checkpoints_latest",
        summary="The latest signed checkpoint",
        description="A C2SP tlog-checkpoint signed note, exactly as issued, followed by the "
        "cosignature lines (C2SP tlog-cosignature) of the witnesses that have cosigned it.",
        tags=["ledger"],
        responses={**_NOTE, **_errors(404)},
    )
    def get(self, request: Request) -> HttpResponse:
        checkpoint = selectors.checkpoint_latest()
        if checkpoint is None:
            raise NotFound("no checkpoint has been issued yet")
        return _text(cosigned_note(checkpoint))


class CheckpointDetailApi(TextApi):
    @extend_schema(
        operation_id="ledger_checkpoints_retrieve",
        summary="The signed checkpoint of one tree size",
        tags=["ledger"],
        parameters=[_path_integer("size")],
        responses={**_NOTE, **_errors(404)},
    )
    def get(self, request: Request, size: str) -> HttpResponse:
        number = _path_int(size, "checkpoint of size")
        checkpoint = Checkpoint.objects.filter(size=number).first()
        if checkpoint is None:
            raise NotFound(f"no checkpoint of size {number}")
        witnessed_later = witness_policy() is not None  # witnesses may still cosign it
        response = _text(cosigned_note(checkpoint), immutable=not witnessed_later)
        if witnessed_later:
            response["Cache-Control"] = "public, max-age=60"
        return response


class CheckpointListApi(PublicApi):
    class OutputSerializer(serializers.Serializer):
        size = serializers.IntegerField()
        root = serializers.SerializerMethodField(help_text="base64")  # type: ignore[assignment]
        key_name = serializers.CharField()
        key_hash = serializers.CharField(help_text="hex key ID of the signing key")
        created_at = serializers.DateTimeField()
        note = serializers.CharField(help_text="the signed note, exactly as issued")
        cosignatures = serializers.SerializerMethodField(
            help_text="each witness's C2SP tlog-cosignature line, by the policy's witness name"
        )
        witnessed = serializers.SerializerMethodField(
            help_text="whether the cosignatures meet this log's witness policy (null: none set)"
        )

        def get_root(self, obj: Checkpoint) -> str:
            return base64.b64encode(bytes(obj.root)).decode()

        def get_cosignatures(self, obj: Checkpoint) -> dict[str, str]:
            return {c.witness: c.line for c in obj.cosignatures.all()}

        def get_witnessed(self, obj: Checkpoint) -> dict[str, Any] | None:
            policy = self.context.get("policy")
            if policy is None:
                return None
            found = witnessed(obj, policy)
            assert found is not None
            return {
                "quorum": policy.describe_quorum(),
                "met": found.quorum_met,
                "cosigners": list(found.cosigners),
            }

    @extend_schema(
        operation_id="ledger_checkpoints_list",
        summary="Every checkpoint, by size",
        tags=["ledger"],
        parameters=[
            OpenApiParameter("after", _integer(0), description="only sizes > after (default 0)"),
            OpenApiParameter("limit", _integer(1, FEED_MAX_LIMIT), description="default 100"),
        ],
        responses={
            200: inline_serializer(
                "CheckpointPage",
                {
                    "checkpoints": OutputSerializer(many=True),
                    "next_after": serializers.IntegerField(allow_null=True),
                },
            ),
            **_errors(400),
        },
    )
    def get(self, request: Request) -> Response:
        after = _int_param(request, "after", 0, 0, MAX_ID)
        limit = _int_param(request, "limit", FEED_DEFAULT_LIMIT, 1, FEED_MAX_LIMIT)
        rows = list(
            Checkpoint.objects.filter(size__gt=after)
            .prefetch_related("cosignatures")
            .order_by("size")[: limit + 1]
        )
        more = len(rows) > limit
        rows = rows[:limit]
        context = {"policy": witness_policy()}
        return Response(
            {
                "checkpoints": self.OutputSerializer(rows, many=True, context=context).data,
                "next_after": rows[-1].size if more else None,
            }
        )


class VerifierKeysApi(TextApi):
    @extend_schema(
        operation_id="ledger_verifier_keys",
        summary="The log's verifier keys",
        description="One C2SP signed-note verifier key per line (name+hash+base64 key): every "
        "key this log has signed checkpoints with, old and current. Pin them out of band; a "
        "key first seen here proves nothing to a client that already trusts this server.",
        tags=["ledger"],
        responses=_NOTE,
    )
    def get(self, request: Request) -> HttpResponse:
        return _text("".join(v.to_string() + "\n" for v in trusted_verifiers()))


# ---- proofs --------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _tree_size() -> int:
    head = TreeHead.objects.filter(pk=1).first()
    return head.size if head else 0


def _covered(size: int, field: str) -> None:
    tree = _tree_size()
    if size > tree:
        raise Unprocessable(
            f"{field} {size} is beyond the Merkle tree, which covers {tree} entries: proofs "
            "are served only for sizes the stored tree covers (it grows when a checkpoint is "
            "issued, about a second after a write)",
            detail={field: "beyond_tree", "covered": tree},
        )


class InclusionProofApi(PublicApi):
    @extend_schema(
        operation_id="ledger_proofs_inclusion",
        summary="Prove an entry is in the tree",
        description="The RFC 9162 audit path of entry seq in the tree of tree_size entries "
        "(default: the latest checkpoint's size), and that tree's root.",
        tags=["ledger"],
        parameters=[
            OpenApiParameter("seq", _integer(0), required=True),
            OpenApiParameter(
                "tree_size", _integer(1), description="default: the latest checkpoint's size"
            ),
        ],
        responses={200: _INCLUSION, **_errors(400, 422)},
    )
    def get(self, request: Request) -> Response:
        seq = _int_param(request, "seq", None, 0, MAX_ID)
        explicit = "tree_size" in request.query_params
        if explicit:
            size = _int_param(request, "tree_size", None, 1, MAX_ID)
        else:
            latest = selectors.checkpoint_latest()
            if latest is None:
                raise Unprocessable(
                    "no checkpoint has been issued yet: pass tree_size",
                    detail={"tree_size": "no_checkpoint"},
                )
            size = latest.size
        _covered(size, "tree_size")
        if seq >= size:
            raise Unprocessable(
                f"entry {seq} is not in the tree of {size} entries",
                detail={"seq": "not_in_tree", "tree_size": size},
            )
        return _json(
            {
                "seq": seq,
                "tree_size": size,
                "leaf_hash": _b64(selectors.inclusion_proof_leaf(seq)),
                "proof": [_b64(h) for h in selectors.inclusion_proof(seq, size)],
                "root": _b64(selectors.tree_root(size)),
            },
            # Against "the latest checkpoint" the answer changes as the log grows.
            immutable=explicit,
        )


class ConsistencyProofApi(PublicApi):
    @extend_schema(
        operation_id="ledger_proofs_consistency",
        summary="Prove a later tree extends an earlier one",
        description="The RFC 9162 consistency proof between the trees of first and second "
        "entries (0 < first <= second), with both roots.",
        tags=["ledger"],
        parameters=[
            OpenApiParameter("first", _integer(1), required=True),
            OpenApiParameter("second", _integer(1), required=True),
        ],
        responses={200: _CONSISTENCY, **_errors(400, 422)},
    )
    def get(self, request: Request) -> Response:
        first = _int_param(request, "first", None, 1, MAX_ID)
        second = _int_param(request, "second", None, 1, MAX_ID)
        if first > second:
            raise InvalidInput(
                "first must not be greater than second", detail={"first": "out_of_range"}
            )
        _covered(second, "second")
        try:
            proof = selectors.consistency_proof(first, second)
        except ValueError as exc:  # sizes RFC 9162 defines no proof for
            raise InvalidInput(str(exc), detail={"first": "out_of_range"}) from None
        return _json(
            {
                "first": first,
                "second": second,
                "proof": [_b64(h) for h in proof],
                "first_root": _b64(selectors.tree_root(first)),
                "second_root": _b64(selectors.tree_root(second)),
            },
            immutable=True,
        )


# ``<str:...>``, not ``<int:...>``: "/entries/-1" must get the API's JSON 404, not Django's
# HTML page.
urlpatterns = [
    path("ledger/entries", LedgerEntriesApi.as_view(), name="ledger-entries"),
    path("ledger/entries/<str:seq>", LedgerEntryDetailApi.as_view(), name="ledger-entry"),
    path("ledger/checkpoints", CheckpointListApi.as_view(), name="ledger-checkpoints"),
    path("ledger/checkpoints/latest", CheckpointLatestApi.as_view(), name="checkpoint-latest"),
    path("ledger/checkpoints/<str:size>", CheckpointDetailApi.as_view(), name="checkpoint"),
    path("ledger/proofs/inclusion", InclusionProofApi.as_view(), name="proof-inclusion"),
    path("ledger/proofs/consistency", ConsistencyProofApi.as_view(), name="proof-consistency"),
    path("ledger/verifier-keys", VerifierKeysApi.as_view(), name="verifier-keys"),
]
