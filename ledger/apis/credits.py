"""Moving credits under ``/api/v1/``: transfers, escrow holds, retirements (with certificates
that verify offline), cancellations, reversals.

Who sees what: transfers, escrow holds, retirements and cancellations are listed for the
caller's organization (an operator's key: everyone's); another organization's escrow hold is a
404, exactly like an id that does not exist. A retirement certificate is a public record, as
registries publish them: any authenticated caller reads it, and its printable page needs no key
at all. Reversals are public registry data.

Lists are pages: ``?after=&limit=<1..500>`` (default 100) answers
``{"results": [...], "next_after": <cursor or null>}``, null exactly when nothing follows. The
cursor is the row's ``id``; for transfers, which exist only as ledger entries, the entry's
``seq``. Query parameters are validated like bodies: a bad one is a 400 naming it, never a 500.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.renderers import StaticHTMLRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from .. import policy, selectors, services
from ..actors import Actor
from ..core.entry import decode_entry
from ..core.quantity import format_tonnes
from ..exceptions import NotFound
from ..inputs import (
    MAX_ID,
    SHA256_HEX,
    Body,
    CancelBody,
    RetireBody,
    TonnesField,
    TransferBody,
    pattern,
)
from ..models import Cancellation, EscrowHold, LedgerEntry, Retirement, Reversal
from ..views import certificate_context
from .base import (
    ID_PARAM as _ID,
)
from .base import (
    BaseApi,
    ListApi,
    PageSerializer,
    PublicApi,
    RetrieveApi,
    list_schema,
    retrieve_schema,
)
from .base import on_one_path as _on_one_path
from .base import page_of as _page_of
from .base import path_id as _path_id
from .base import query as _query
from .base import responses as _responses

# ---- shared pieces ------------------------------------------------------------------------------


class AccountBatchFilterSerializer(PageSerializer):
    account = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, help_text="only this account's"
    )
    batch = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, help_text="only this batch's"
    )


def _filtered(qs: QuerySet[Any], params: dict[str, Any]) -> QuerySet[Any]:
    if "account" in params:
        qs = qs.filter(account_id=params["account"])
    if "batch" in params:
        qs = qs.filter(batch_id=params["batch"])
    return qs


def _entry_times(seqs: Iterable[int]) -> dict[int, str]:
    """Each entry's time, read from its bytes: the ledger is the only place it is kept."""
    rows = LedgerEntry.objects.filter(seq__in=set(seqs)).values_list("seq", "body")
    return {seq: decode_entry(bytes(body)).time for seq, body in rows}


class _TimedSerializer(serializers.Serializer):
    time = serializers.SerializerMethodField(help_text="the ledger entry's time (UTC)")

    def get_time(self, obj: Any) -> str:
        return self.context["times"][obj.entry_seq]


# ---- transfers ----------------------------------------------------------------------------------


class TransferOutputSerializer(serializers.Serializer):
    entry_seq = serializers.IntegerField(help_text="the credit.transfer ledger entry")
    batch = serializers.IntegerField()
    sender = serializers.IntegerField()
    recipient = serializers.IntegerField()
    quantity = TonnesField()
    time = serializers.CharField(help_text="the ledger entry's time (UTC)")


def _transfer(seq: int, body: bytes) -> dict[str, Any]:
    e = decode_entry(body)
    return {
        "entry_seq": seq,
        "batch": e.data["batch"],
        "sender": e.data["from"],
        "recipient": e.data["to"],
        "quantity": e.data["quantity"],
        "time": e.time,
    }


# Transfers exist only as ledger entries, so a page is found by scanning them in seq order. One
# call reads at most SCAN of them (CHUNK per query); if it stops there, next_after says where
# to go on, after a page that may be short or even empty.
SCAN = 5000
CHUNK = 1000


def _transfers_page(
    *, mine: set[int] | None, account: int | None, batch: int | None, after: int, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    found: list[dict[str, Any]] = []
    scanned = 0
    while scanned < SCAN:
        want = min(CHUNK, SCAN - scanned)
        rows = list(
            LedgerEntry.objects.filter(type="credit.transfer", seq__gt=after)
            .order_by("seq")
            .values_list("seq", "body")[:want]
        )
        for seq, body in rows:
            t = _transfer(seq, bytes(body))
            parties = {t["sender"], t["recipient"]}
            if (
                (mine is None or parties & mine)
                and (account is None or account in parties)
                and (batch is None or t["batch"] == batch)
            ):
                if len(found) == limit:  # one more than the page: something follows
                    return found, found[-1]["entry_seq"]
                found.append(t)
        scanned += len(rows)
        if len(rows) < want:
            return found, None  # read to the end of the ledger
        after = rows[-1][0]
    # The scan budget is spent before the page is full: go on after the last entry read.
    return found, after


class TransferListApi(BaseApi):
    required_scope = "read"

    class FilterSerializer(PageSerializer):
        after = serializers.IntegerField(
            min_value=0, max_value=MAX_ID, default=0, help_text="entry seq to continue after"
        )
        account = serializers.IntegerField(
            min_value=1, max_value=MAX_ID, required=False, help_text="only from or to it"
        )
        batch = serializers.IntegerField(
            min_value=1, max_value=MAX_ID, required=False, help_text="only this batch's"
        )

    @extend_schema(
        operation_id="transfers_list",
        tags=["credits"],
        parameters=[FilterSerializer],
        responses=_responses(
            {200: _page_of("TransferPage", TransferOutputSerializer, "entry seq")}, 400
        ),
    )
    def get(self, request: Request) -> Response:
        """Transfers from or to the caller's accounts (an operator's key: all), read from the
        ledger's credit.transfer entries. One call reads at most 5,000 transfer entries: follow
        ``next_after`` until it is null (a page may be short, even empty, before the end)."""
        params = _query(self.FilterSerializer, request)
        actor = self.actor(request)
        results, next_after = _transfers_page(
            mine=policy.account_ids_visible_to(actor),
            account=params.get("account"),
            batch=params.get("batch"),
            after=params["after"],
            limit=params["limit"],
        )
        return Response(
            {
                "results": TransferOutputSerializer(results, many=True).data,
                "next_after": next_after,
            }
        )


class TransferCreateApi(BaseApi):
    required_scope = "transfer"

    class InputSerializer(TransferBody):  # bulk import's "transfer" operations too
        pass

    class OutputSerializer(TransferOutputSerializer):
        pass

    @extend_schema(
        operation_id="transfers_create",
        tags=["credits"],
        request=InputSerializer,
        responses=_responses({201: OutputSerializer}, 400, 404, 409, 422),
    )
    def post(self, request: Request) -> Response:
        """Move tradable credits from one of the caller's accounts to any holding account."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            entry = services.credit_transfer(actor=self.actor(request), **data.validated_data)
            out = _transfer(entry.seq, bytes(entry.body))
            return Response(self.OutputSerializer(out).data, status=status.HTTP_201_CREATED)

        return self.idempotent(request, run)


TransfersApi = _on_one_path("TransfersApi", TransferListApi, TransferCreateApi)


# ---- escrow holds -------------------------------------------------------------------------------


class EscrowHoldOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.IntegerField(source="account_id")
    batch = serializers.IntegerField(source="batch_id")
    quantity = TonnesField(help_text="put on hold")
    remaining = TonnesField(help_text="still on hold")
    reference = serializers.CharField()


class EscrowHoldListApi(ListApi):
    FilterSerializer = AccountBatchFilterSerializer
    output = EscrowHoldOutputSerializer

    def rows(self, actor: Actor, params: dict[str, Any]) -> QuerySet[EscrowHold]:
        return _filtered(policy.escrow_holds_visible_to(actor), params)

    @list_schema(
        "escrow_holds_list",
        "credits",
        AccountBatchFilterSerializer,
        _page_of("EscrowHoldPage", EscrowHoldOutputSerializer),
    )
    def get(self, request: Request) -> Response:
        """The caller's escrow holds (an operator's key: all), spent ones included."""
        return self.paged(request)


class EscrowHoldCreateApi(BaseApi):
    required_scope = "transfer"

    class InputSerializer(Body):
        batch = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        account = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        quantity = TonnesField()
        reference = serializers.CharField(max_length=200, help_text="e.g. the auction lot")

    class OutputSerializer(EscrowHoldOutputSerializer):
        entry_seq = serializers.IntegerField(help_text="the escrow.hold ledger entry")

    @extend_schema(
        operation_id="escrow_holds_create",
        tags=["credits"],
        request=InputSerializer,
        responses=_responses({201: OutputSerializer}, 400, 404, 409, 422),
    )
    def post(self, request: Request) -> Response:
        """Set tradable credits of one of the caller's accounts aside (an auction lot, a
        pending delivery): they stay in the account, escrowed, until released or delivered."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            hold = services.escrow_hold(actor=self.actor(request), **data.validated_data)
            # Still inside the service's transaction, which holds the ledger head's lock: the
            # last entry is the one it appended.
            out = {
                **EscrowHoldOutputSerializer(hold).data,
                "entry_seq": selectors.ledger_size() - 1,
            }
            return Response(out, status=status.HTTP_201_CREATED)

        return self.idempotent(request, run)


EscrowHoldsApi = _on_one_path("EscrowHoldsApi", EscrowHoldListApi, EscrowHoldCreateApi)


class EscrowHoldRetrieveApi(RetrieveApi):
    what = "escrow hold"
    output = EscrowHoldOutputSerializer

    def rows(self, actor: Actor) -> QuerySet[EscrowHold]:
        return policy.escrow_holds_visible_to(actor)

    @retrieve_schema("escrow_holds_retrieve", "credits", EscrowHoldOutputSerializer)
    def get(self, request: Request, pk: str) -> Response:
        """One of the caller's escrow holds."""
        return self.one(request, pk)


class EscrowHoldReleaseApi(BaseApi):
    required_scope = "transfer"

    class InputSerializer(Body):
        quantity = TonnesField(help_text="at most what remains on hold")

    class OutputSerializer(EscrowHoldOutputSerializer):
        released = TonnesField()
        entry_seq = serializers.IntegerField(help_text="the escrow.release ledger entry")

    @extend_schema(
        operation_id="escrow_holds_release",
        tags=["credits"],
        parameters=_ID,
        request=InputSerializer,
        responses=_responses({200: OutputSerializer}, 400, 404, 409),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Return escrowed credits to the holder's tradable balance (an auction lot unsold)."""
        hold_id = _path_id(pk, "escrow hold")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        quantity = data.validated_data["quantity"]

        def run() -> Response:
            entry = services.escrow_release(
                actor=self.actor(request), hold=hold_id, quantity=quantity
            )
            hold = EscrowHold.objects.get(pk=hold_id)
            out = {
                **EscrowHoldOutputSerializer(hold).data,
                "released": format_tonnes(quantity),
                "entry_seq": entry.seq,
            }
            return Response(out)

        return self.idempotent(request, run)


# ---- retirements --------------------------------------------------------------------------------


class RetirementOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    certificate = serializers.CharField()
    entry_seq = serializers.IntegerField(help_text="the credit.retire ledger entry")
    account = serializers.IntegerField(source="account_id")
    batch = serializers.IntegerField(source="batch_id")
    batch_serial = serializers.CharField(source="batch.serial")
    project_code = serializers.CharField(source="batch.project.code")
    project_name = serializers.CharField(source="batch.project.name")
    ecosystem = serializers.CharField(source="batch.project.ecosystem")
    vintage = serializers.IntegerField(source="batch.vintage")
    quantity = TonnesField()
    beneficiary = serializers.CharField()
    purpose = serializers.CharField()
    jurisdiction = serializers.CharField(help_text="ISO 3166-2")
    reason = serializers.CharField(allow_blank=True)


class RetirementListItemSerializer(_TimedSerializer, RetirementOutputSerializer):
    pass


class RetirementListApi(ListApi):
    FilterSerializer = AccountBatchFilterSerializer
    output = RetirementListItemSerializer

    def rows(self, actor: Actor, params: dict[str, Any]) -> QuerySet[Retirement]:
        return _filtered(
            policy.retirements_visible_to(actor).select_related("batch__project"), params
        )

    def context(self, rows: list[Retirement]) -> dict[str, Any]:
        return {"times": _entry_times(r.entry_seq for r in rows)}

    @list_schema(
        "retirements_list",
        "credits",
        AccountBatchFilterSerializer,
        _page_of("RetirementPage", RetirementListItemSerializer),
    )
    def get(self, request: Request) -> Response:
        """The caller's retirements (an operator's key: all). Anyone's certificate can be read
        by its number."""
        return self.paged(request)


class RetirementCreateApi(BaseApi):
    required_scope = "retire"

    class InputSerializer(RetireBody):  # bulk import's "retire" operations too
        pass

    @extend_schema(
        operation_id="retirements_create",
        tags=["credits"],
        request=InputSerializer,
        responses=_responses({201: RetirementOutputSerializer}, 400, 404, 409, 422),
    )
    def post(self, request: Request) -> Response:
        """Retire credits of one of the caller's accounts for a beneficiary, permanently: they
        never move again. The answer carries the certificate number."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            retirement = services.credit_retire(actor=self.actor(request), **data.validated_data)
            return Response(RetirementOutputSerializer(retirement).data, status=201)

        return self.idempotent(request, run)


RetirementsApi = _on_one_path("RetirementsApi", RetirementListApi, RetirementCreateApi)


class CertificateProofSerializer(serializers.Serializer):
    leaf_index = serializers.IntegerField(help_text="= entry_seq")
    tree_size = serializers.IntegerField(help_text="the checkpoint's tree size")
    hashes = serializers.ListField(
        child=serializers.CharField(), help_text="base64; RFC 9162 §2.1.3 inclusion proof"
    )
    # DRF's metaclass takes declared fields off the class, so this does not shadow
    # Field.root at run time; the stubs cannot know that.
    root = serializers.CharField(help_text="base64; the checkpoint's root hash")  # type: ignore[assignment]


class CertificateSerializer(RetirementOutputSerializer):
    entry_time = serializers.CharField(help_text="the ledger entry's time (UTC)")
    entry = serializers.CharField(help_text="the ledger entry's exact RFC 8785 bytes, as text")
    entry_sha256 = serializers.CharField(help_text="hex SHA-256 of the entry: the chain hash")
    leaf_hash = serializers.CharField(help_text="base64 SHA-256(0x00 || entry): RFC 9162 leaf")
    inclusion_proof = CertificateProofSerializer(
        allow_null=True, help_text="against the latest checkpoint; null until one covers it"
    )
    checkpoint = serializers.CharField(
        allow_null=True, help_text="the signed C2SP checkpoint note the proof leads to"
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _certificate(certificate: str) -> dict[str, Any]:
    """``CertificateSerializer``'s shape: the record, the entry's bytes, hashes and proof."""
    c = selectors.retirement_certificate(certificate=certificate)
    proof = c.inclusion
    return {
        **RetirementOutputSerializer(c.retirement).data,
        "entry_time": c.entry_time,
        "entry": c.entry.decode(),
        "entry_sha256": c.entry_hash.hex(),
        "leaf_hash": _b64(c.leaf_hash),
        "inclusion_proof": None
        if proof is None
        else {
            "leaf_index": c.retirement.entry_seq,
            "tree_size": proof.checkpoint.size,
            "hashes": [_b64(h) for h in proof.hashes],
            "root": _b64(bytes(proof.checkpoint.root)),
        },
        "checkpoint": None if proof is None else proof.checkpoint.note,
    }


class RetirementCertificateApi(PublicApi):
    """Public like the certificate it backs (its QR code and its page link here): no key,
    rate-limited per address. Nothing in it that the certificate page does not show: the
    account and batch ids are in the entry's own bytes."""

    @extend_schema(
        operation_id="retirements_certificate",
        tags=["credits"],
        responses=_responses({200: CertificateSerializer}, 404),
    )
    def get(self, request: Request, certificate: str) -> Response:
        """A retirement certificate, whoever retired it (registries publish retirements); no
        key needed. Everything needed to verify it offline: check the checkpoint's signature
        with the log's verifier key, then that the proof leads from the leaf hash to its root."""
        # _certificate's dict is already the CertificateSerializer's shape (the schema's).
        return Response(_certificate(certificate))


class RetirementCertificatePageApi(PublicApi):
    renderer_classes = [StaticHTMLRenderer]

    @extend_schema(
        operation_id="retirements_certificate_page",
        tags=["credits"],
        responses={
            (200, "text/html"): OpenApiTypes.STR,
            (404, "text/html"): OpenApiTypes.STR,
        },
    )
    def get(self, request: Request, certificate: str) -> HttpResponse:
        """The certificate as a printable page; no key needed."""
        try:
            context: dict[str, Any] = certificate_context(certificate)
            code = 200
        except NotFound:  # a person reads this page: answer in HTML, not the API's JSON
            context, code = {"c": None, "certificate": certificate}, 404
        html = render_to_string("ledger/certificate.html", context)
        return HttpResponse(html, status=code, content_type="text/html; charset=utf-8")


# ---- cancellations ------------------------------------------------------------------------------


class CancellationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    entry_seq = serializers.IntegerField(help_text="the credit.cancel ledger entry")
    account = serializers.IntegerField(source="account_id")
    batch = serializers.IntegerField(source="batch_id")
    quantity = TonnesField()
    reason = serializers.CharField()
    destination = serializers.CharField(allow_blank=True)


class CancellationListItemSerializer(_TimedSerializer, CancellationOutputSerializer):
    pass


class CancellationListApi(ListApi):
    FilterSerializer = AccountBatchFilterSerializer
    output = CancellationListItemSerializer

    def rows(self, actor: Actor, params: dict[str, Any]) -> QuerySet[Cancellation]:
        return _filtered(policy.cancellations_visible_to(actor), params)

    def context(self, rows: list[Cancellation]) -> dict[str, Any]:
        return {"times": _entry_times(c.entry_seq for c in rows)}

    @list_schema(
        "cancellations_list",
        "credits",
        AccountBatchFilterSerializer,
        _page_of("CancellationPage", CancellationListItemSerializer),
    )
    def get(self, request: Request) -> Response:
        """The caller's cancellations (an operator's key: all, buffer cancellations of
        reversals included)."""
        return self.paged(request)


class CancellationCreateApi(BaseApi):
    required_scope = "cancel"

    class InputSerializer(CancelBody):  # bulk import's "cancel" operations too
        pass

    @extend_schema(
        operation_id="cancellations_create",
        tags=["credits"],
        request=InputSerializer,
        responses=_responses({201: CancellationOutputSerializer}, 400, 404, 409, 422),
    )
    def post(self, request: Request) -> Response:
        """Cancel credits of one of the caller's accounts (e.g. exported to another registry):
        like a retirement they never move again, but claim no offset."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            c = services.credit_cancel(actor=self.actor(request), **data.validated_data)
            return Response(CancellationOutputSerializer(c).data, status=201)

        return self.idempotent(request, run)


CancellationApi = _on_one_path("CancellationApi", CancellationListApi, CancellationCreateApi)


# ---- reversals ----------------------------------------------------------------------------------


class BufferCancellationSerializer(serializers.Serializer):
    batch = serializers.IntegerField(source="batch_id")
    quantity = TonnesField()


class ReversalOutputSerializer(_TimedSerializer):
    id = serializers.IntegerField()
    entry_seq = serializers.IntegerField(help_text="the reversal.record ledger entry")
    project = serializers.IntegerField(source="project_id")
    quantity = TonnesField()
    evidence_sha256 = serializers.CharField()
    description = serializers.CharField()
    buffer_cancellations = serializers.SerializerMethodField(
        help_text="the buffer-pool credits cancelled to compensate, by batch"
    )

    @extend_schema_field(BufferCancellationSerializer(many=True))
    def get_buffer_cancellations(self, r: Reversal) -> Any:
        rows = self.context["cancellations"].get(r.entry_seq, [])
        return BufferCancellationSerializer(rows, many=True).data


def _reversal_context(reversals: list[Reversal]) -> dict[str, Any]:
    seqs = [r.entry_seq for r in reversals]
    by_seq: dict[int, list[Cancellation]] = {}
    for c in Cancellation.objects.filter(entry_seq__in=seqs).order_by("pk"):
        by_seq.setdefault(c.entry_seq, []).append(c)
    return {"cancellations": by_seq, "times": _entry_times(seqs)}


class ReversalListApi(ListApi):
    class FilterSerializer(PageSerializer):
        project = serializers.IntegerField(
            min_value=1, max_value=MAX_ID, required=False, help_text="only this project's"
        )

    output = ReversalOutputSerializer

    def rows(self, actor: Actor, params: dict[str, Any]) -> QuerySet[Reversal]:
        qs = Reversal.objects.all()
        if "project" in params:
            qs = qs.filter(project_id=params["project"])
        return qs

    def context(self, rows: list[Reversal]) -> dict[str, Any]:
        return _reversal_context(rows)

    @list_schema(
        "reversals_list",
        "credits",
        FilterSerializer,
        _page_of("ReversalPage", ReversalOutputSerializer),
    )
    def get(self, request: Request) -> Response:
        """Every recorded reversal (public registry data)."""
        return self.paged(request)


class ReversalRecordApi(BaseApi):
    required_scope = "issue"

    class InputSerializer(Body):
        project = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        quantity = TonnesField()
        evidence_sha256 = pattern(
            SHA256_HEX, help_text="hex SHA-256 of the evidence (survey, imagery)"
        )
        description = serializers.CharField(max_length=5000)

    @extend_schema(
        operation_id="reversals_create",
        tags=["credits"],
        request=InputSerializer,
        responses=_responses({201: ReversalOutputSerializer}, 400, 404, 409, 422),
    )
    def post(self, request: Request) -> Response:
        """Record a loss of stored carbon (the project's registry, or an operator): as much is
        cancelled from the registry's buffer pool, this project's batches first."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            r = services.reversal_record(actor=self.actor(request), **data.validated_data)
            out = ReversalOutputSerializer(r, context=_reversal_context([r])).data
            return Response(out, status=201)

        return self.idempotent(request, run)


ReversalsApi = _on_one_path("ReversalsApi", ReversalListApi, ReversalRecordApi)

urlpatterns = [
    path("transfers", TransfersApi.as_view(), name="transfers"),
    path("escrow-holds", EscrowHoldsApi.as_view(), name="escrow-holds"),
    path("escrow-holds/<str:pk>", EscrowHoldRetrieveApi.as_view(), name="escrow-hold"),
    path(
        "escrow-holds/<str:pk>/release",
        EscrowHoldReleaseApi.as_view(),
        name="escrow-hold-release",
    ),
    path("retirements", RetirementsApi.as_view(), name="retirements"),
    path(
        "retirements/<str:certificate>",
        RetirementCertificateApi.as_view(),
        name="retirement-certificate",
    ),
    path(
        "retirements/<str:certificate>/certificate.html",
        RetirementCertificatePageApi.as_view(),
        name="retirement-certificate-page",
    ),
    path("cancellations", CancellationApi.as_view(), name="cancellations"),
    path("reversals", ReversalsApi.as_view(), name="reversals"),
]
