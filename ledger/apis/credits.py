"""Moving credits: transfers, retirements (with verifiable certificates), cancellations,
reversals."""

from __future__ import annotations

import base64
from typing import Any

from django.http import HttpResponse
from django.template.loader import render_to_string
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.renderers import StaticHTMLRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from .. import selectors, services
from ..core import merkle
from ..core.entry import decode_entry
from ..exceptions import InvalidInput, NotFound
from ..models import Account, Cancellation, LedgerEntry, Retirement, Reversal
from .base import BaseApi, PublicApi, TonnesField, page_params


class TransferOutputSerializer(serializers.Serializer):
    entry_seq = serializers.IntegerField()
    batch = serializers.IntegerField()
    sender = serializers.IntegerField()
    recipient = serializers.IntegerField()
    quantity = TonnesField()
    time = serializers.CharField()


SCAN = 5000


class TransferCreateApi(BaseApi):
    required_scopes = {"POST": "transfer", "GET": "read"}

    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="entry seq to continue after"),
            OpenApiParameter("account", int),
        ],
        responses={
            200: inline_serializer(
                "TransferPage",
                {
                    "results": TransferOutputSerializer(many=True),
                    "next_after": serializers.IntegerField(allow_null=True),
                },
            )
        },
        operation_id="transfers_list",
        tags=["credits"],
    )
    def get(self, request: Request) -> Response:
        """Transfers touching the caller's accounts, read from the ledger. Each call scans at
        most 5,000 transfer entries; follow ``next_after`` until it is null."""
        after, _ = page_params(request)
        actor = self.actor(request)
        account = request.query_params.get("account")
        if account is not None and not account.isdigit():
            raise InvalidInput("account must be an integer", detail={"account": "invalid"})
        mine = (
            None
            if actor.is_operator
            else set(
                Account.objects.filter(organization_id=actor.organization_id).values_list(
                    "pk", flat=True
                )
            )
        )
        rows = list(
            LedgerEntry.objects.filter(type="credit.transfer", seq__gt=after)
            .order_by("seq")
            .values_list("seq", "body")[:SCAN]
        )
        results = []
        for seq, body in rows:
            e = decode_entry(bytes(body))
            parties = {e.data["from"], e.data["to"]}
            if mine is not None and not parties & mine:
                continue
            if account is not None and int(account) not in parties:
                continue
            results.append(
                {
                    "entry_seq": seq,
                    "batch": e.data["batch"],
                    "sender": e.data["from"],
                    "recipient": e.data["to"],
                    "quantity": e.data["quantity"],
                    "time": e.time,
                }
            )
        return Response(
            {
                "results": TransferOutputSerializer(results, many=True).data,
                "next_after": rows[-1][0] if len(rows) == SCAN else None,
            }
        )

    class InputSerializer(serializers.Serializer):
        batch = serializers.IntegerField(min_value=1)
        sender = serializers.IntegerField(min_value=1)
        recipient = serializers.IntegerField(min_value=1)
        quantity = TonnesField()

    class OutputSerializer(serializers.Serializer):
        entry_seq = serializers.IntegerField()
        batch = serializers.IntegerField()
        sender = serializers.IntegerField()
        recipient = serializers.IntegerField()
        quantity = TonnesField()
        time = serializers.CharField()

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer},
        operation_id="transfers_create",
        tags=["credits"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            entry = services.credit_transfer(actor=self.actor(request), **data.validated_data)
            decoded = decode_entry(bytes(entry.body))
            out: dict[str, Any] = {
                "entry_seq": entry.seq,
                "batch": decoded.data["batch"],
                "sender": decoded.data["from"],
                "recipient": decoded.data["to"],
                "quantity": decoded.data["quantity"],
                "time": decoded.time,
            }
            return Response(self.OutputSerializer(out).data, status=status.HTTP_201_CREATED)

        return self.idempotent(request, run)


_PAGE = [OpenApiParameter("after", int), OpenApiParameter("limit", int)]


class RetirementOutputSerializer(serializers.Serializer):
    certificate = serializers.CharField()
    entry_seq = serializers.IntegerField()
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
    jurisdiction = serializers.CharField()
    reason = serializers.CharField()


class RetirementCreateApi(BaseApi):
    required_scopes = {"POST": "retire", "GET": "read"}

    class InputSerializer(serializers.Serializer):
        batch = serializers.IntegerField(min_value=1)
        account = serializers.IntegerField(min_value=1)
        quantity = TonnesField()
        beneficiary = serializers.CharField(max_length=300)
        purpose = serializers.CharField(max_length=300)
        jurisdiction = serializers.CharField(max_length=6)
        reason = serializers.CharField(max_length=2000, required=False, allow_blank=True)

    @extend_schema(
        request=InputSerializer,
        responses={201: RetirementOutputSerializer},
        operation_id="retirements_create",
        tags=["credits"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            retirement = services.credit_retire(actor=self.actor(request), **data.validated_data)
            return Response(RetirementOutputSerializer(retirement).data, status=201)

        return self.idempotent(request, run)

    @extend_schema(
        parameters=_PAGE,
        responses={200: RetirementOutputSerializer(many=True)},
        operation_id="retirements_list",
        tags=["credits"],
    )
    def get(self, request: Request) -> Response:
        after, limit = page_params(request)
        actor = self.actor(request)
        rows = Retirement.objects.select_related("batch__project").filter(entry_seq__gt=after)
        if not actor.is_operator:
            rows = rows.filter(account__organization_id=actor.organization_id)
        return Response(
            RetirementOutputSerializer(rows.order_by("entry_seq")[:limit], many=True).data
        )


def _certificate(certificate: str) -> dict[str, Any]:
    retirement = (
        Retirement.objects.select_related("batch__project").filter(certificate=certificate).first()
    )
    if retirement is None:
        raise NotFound(f"retirement certificate {certificate} not found")
    entry = LedgerEntry.objects.get(seq=retirement.entry_seq)
    body = bytes(entry.body)
    out: dict[str, Any] = {
        **RetirementOutputSerializer(retirement).data,
        "entry_time": decode_entry(body).time,
        "entry": body.decode(),
        "leaf_hash": base64.b64encode(merkle.leaf_hash(body)).decode(),
        "checkpoint": None,
        "inclusion_proof": None,
    }
    checkpoint = selectors.checkpoint_latest()
    if checkpoint is not None and checkpoint.size > retirement.entry_seq:
        out["checkpoint"] = checkpoint.note
        out["inclusion_proof"] = {
            "tree_size": checkpoint.size,
            "leaf_index": retirement.entry_seq,
            "hashes": [
                base64.b64encode(h).decode()
                for h in services.inclusion_proof(retirement.entry_seq, checkpoint.size)
            ],
        }
    return out


class RetirementCertificateApi(BaseApi):
    """A retirement is a public record: any authenticated caller may read its certificate,
    which carries everything needed to verify it offline."""

    @extend_schema(
        operation_id="retirements_certificate",
        tags=["credits"],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, certificate: str) -> Response:
        return Response(_certificate(certificate))


class RetirementCertificatePageApi(PublicApi):
    renderer_classes = [StaticHTMLRenderer]

    @extend_schema(
        operation_id="retirements_certificate_page",
        tags=["credits"],
        responses={(200, "text/html"): OpenApiTypes.STR},
    )
    def get(self, request: Request, certificate: str) -> HttpResponse:
        cert = _certificate(certificate)
        return HttpResponse(render_to_string("ledger/certificate.html", {"c": cert}))


class CancellationOutputSerializer(serializers.Serializer):
    entry_seq = serializers.IntegerField()
    account = serializers.IntegerField(source="account_id")
    batch = serializers.IntegerField(source="batch_id")
    quantity = TonnesField()
    reason = serializers.CharField()
    destination = serializers.CharField()


class CancellationApi(BaseApi):
    required_scopes = {"POST": "cancel", "GET": "read"}

    class InputSerializer(serializers.Serializer):
        batch = serializers.IntegerField(min_value=1)
        account = serializers.IntegerField(min_value=1)
        quantity = TonnesField()
        reason = serializers.CharField(
            max_length=2000, required=False, allow_blank=True, default=""
        )
        destination = serializers.CharField(
            max_length=200, required=False, allow_blank=True, default=""
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: CancellationOutputSerializer},
        operation_id="cancellations_create",
        tags=["credits"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            c = services.credit_cancel(actor=self.actor(request), **data.validated_data)
            return Response(CancellationOutputSerializer(c).data, status=201)

        return self.idempotent(request, run)

    @extend_schema(
        parameters=_PAGE,
        responses={200: CancellationOutputSerializer(many=True)},
        operation_id="cancellations_list",
        tags=["credits"],
    )
    def get(self, request: Request) -> Response:
        after, limit = page_params(request)
        actor = self.actor(request)
        rows = Cancellation.objects.filter(entry_seq__gt=after)
        if not actor.is_operator:
            rows = rows.filter(account__organization_id=actor.organization_id)
        return Response(
            CancellationOutputSerializer(rows.order_by("entry_seq", "pk")[:limit], many=True).data
        )


class ReversalOutputSerializer(serializers.Serializer):
    entry_seq = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    quantity = TonnesField()
    evidence_sha256 = serializers.CharField()
    description = serializers.CharField()


class ReversalApi(BaseApi):
    required_scopes = {"POST": "issue", "GET": "read"}

    class InputSerializer(serializers.Serializer):
        project = serializers.IntegerField(min_value=1)
        quantity = TonnesField()
        evidence_sha256 = serializers.CharField(max_length=64)
        description = serializers.CharField(max_length=5000)

    @extend_schema(
        request=InputSerializer,
        responses={201: ReversalOutputSerializer},
        operation_id="reversals_create",
        tags=["credits"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            r = services.reversal_record(actor=self.actor(request), **data.validated_data)
            return Response(ReversalOutputSerializer(r).data, status=201)

        return self.idempotent(request, run)

    @extend_schema(
        parameters=_PAGE,
        responses={200: ReversalOutputSerializer(many=True)},
        operation_id="reversals_list",
        tags=["credits"],
    )
    def get(self, request: Request) -> Response:
        after, limit = page_params(request)
        rows = Reversal.objects.filter(entry_seq__gt=after).order_by("entry_seq")[:limit]
        return Response(ReversalOutputSerializer(rows, many=True).data)


urlpatterns = [
    path("transfers", TransferCreateApi.as_view(), name="transfer-create"),
    path("retirements", RetirementCreateApi.as_view(), name="retirements"),
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
    path("reversals", ReversalApi.as_view(), name="reversals"),
]
