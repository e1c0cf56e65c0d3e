"""The public register under ``/api/v1/public/``: projects, batches (and one batch's supply by
bucket) and retirements, filtered exactly as the portal's lists and exports filter them
(``ledger/public_register.py``: the same filters, the same rows, the same column names).

No key is needed (``PublicApi``): anonymous callers are throttled per address
(``API_ANON_RATE``), callers that send a key at their key's rate. Nothing here is more than the
public pages show: no account, no holder, no reason.

Pages follow the API's convention: ``?after=&limit=`` in id order (retirements: in ledger
sequence order, ``after`` an ``entry_seq``), answering ``{"results", "next_after"}``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from .. import public_register as register
from ..core.quantity import format_tonnes
from ..exceptions import NotFound
from ..inputs import CODE, JURISDICTION
from ..models import Ecosystem, Project
from .base import ID_PARAM, PageSerializer, PublicApi, page_of, path_id, query, responses

TONNES = 'a decimal string of tonnes CO2e with 3 decimals, e.g. "2340.100"'


def _tonnes() -> serializers.CharField:
    return serializers.CharField(help_text=TONNES)


class FilterSerializer(PageSerializer):
    q = serializers.CharField(
        max_length=register.MAX_TEXT,
        required=False,
        help_text="words that must all appear (case-insensitive) in the code, name, "
        "jurisdiction, methodology, developer, serial, verification body, certificate, "
        "beneficiary or purpose, as the list has them",
    )
    ecosystem = serializers.ChoiceField(choices=Ecosystem.values, required=False)
    jurisdiction = serializers.RegexField(
        rf"\A(?:{JURISDICTION})\Z",
        required=False,
        trim_whitespace=False,
        help_text="the project's ISO 3166-2 subdivision, e.g. CN-GD",
    )
    methodology = serializers.RegexField(
        rf"\A(?:{CODE})\Z", required=False, trim_whitespace=False, help_text="a methodology code"
    )
    vintage = serializers.IntegerField(
        min_value=register.VINTAGES[0], max_value=register.VINTAGES[1], required=False
    )


class ProjectFilterSerializer(FilterSerializer):
    status = serializers.ChoiceField(choices=Project.Status.values, required=False)


class BatchFilterSerializer(ProjectFilterSerializer):
    project = serializers.RegexField(
        rf"\A(?:{CODE})\Z", required=False, trim_whitespace=False, help_text="a project code"
    )


class ProjectRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    ecosystem = serializers.ChoiceField(choices=Ecosystem.values)
    storage_pathway = serializers.CharField()
    jurisdiction = serializers.CharField()
    methodology = serializers.CharField(help_text="its code")
    methodology_name = serializers.CharField()
    developer = serializers.CharField(help_text="the developer organization's name")
    registry = serializers.CharField(help_text="the registry organization's name")
    validation_body = serializers.CharField()
    status = serializers.ChoiceField(choices=Project.Status.values)
    area_ha = serializers.CharField(help_text="hectares, 4 decimals")
    batches = serializers.IntegerField(help_text="how many batches it has issued")
    issued_tco2e = _tonnes()
    retired_tco2e = _tonnes()
    cancelled_tco2e = _tonnes()


class BatchRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    serial = serializers.CharField()
    project = serializers.CharField(help_text="the project's code")
    project_name = serializers.CharField()
    ecosystem = serializers.ChoiceField(choices=Ecosystem.values)
    jurisdiction = serializers.CharField()
    methodology = serializers.CharField()
    vintage = serializers.IntegerField()
    monitoring_start = serializers.DateField()
    monitoring_end = serializers.DateField()
    verification_body = serializers.CharField()
    verification_report_sha256 = serializers.CharField()
    buffer_share_percent = serializers.CharField(help_text="percent, 2 decimals")
    issued_tco2e = _tonnes()
    retired_tco2e = _tonnes()
    cancelled_tco2e = _tonnes()
    outstanding_tco2e = serializers.CharField(help_text="issued less retired and cancelled")


class RetirementRowSerializer(serializers.Serializer):
    certificate = serializers.CharField()
    entry_seq = serializers.IntegerField()
    retired_at = serializers.CharField(help_text="the ledger entry's time (RFC 3339, UTC)")
    batch = serializers.IntegerField(help_text="the batch's id")
    batch_serial = serializers.CharField()
    project = serializers.CharField(help_text="the project's code")
    project_name = serializers.CharField()
    ecosystem = serializers.ChoiceField(choices=Ecosystem.values)
    vintage = serializers.IntegerField()
    quantity_tco2e = _tonnes()
    beneficiary = serializers.CharField()
    purpose = serializers.CharField()
    jurisdiction = serializers.CharField(help_text="where the retirement is claimed")


class SupplySerializer(serializers.Serializer):
    issued_tco2e = _tonnes()
    tradable_tco2e = serializers.CharField(help_text="in holding accounts")
    escrowed_tco2e = serializers.CharField(help_text="set aside (auction or listing lots)")
    buffer_tco2e = serializers.CharField(help_text="in the buffer pool")
    retired_tco2e = _tonnes()
    cancelled_tco2e = _tonnes()


class BatchDetailSerializer(BatchRowSerializer):
    supply = SupplySerializer(help_text="the buckets; they sum to issued_tco2e")


class _PublicList(PublicApi):
    kind: str
    filters: type[serializers.Serializer]

    def answer(self, request: Request) -> Response:
        params = query(self.filters, request)
        values, errors = register.parse(self.kind, request.query_params)
        if errors:  # what the schema cannot state (a text of spaces only, say)
            raise serializers.ValidationError(
                {n: [serializers.ErrorDetail(e.message, e.code)] for n, e in errors.items()}
            )
        key = "entry_seq" if self.kind == "retirements" else "pk"
        qs: QuerySet[Any] = register.listing(self.kind, values).order_by(key)
        after, limit = params["after"], params["limit"]
        items = list(qs.filter(**{f"{key}__gt": after})[: limit + 1])
        more = len(items) > limit
        items = items[:limit]
        rows = register.rows_of(self.kind, items)
        if self.kind == "projects":
            for row, p in zip(rows, items, strict=True):
                row["id"] = p.pk
        last = getattr(items[-1], key) if more else None
        return Response({"results": rows, "next_after": last})


class PublicProjectListApi(_PublicList):
    kind = "projects"
    filters = ProjectFilterSerializer

    @extend_schema(
        operation_id="public_projects_list",
        tags=["public register"],
        parameters=[ProjectFilterSerializer],
        responses=responses({200: page_of("PublicProjectPage", ProjectRowSerializer)}, 400),
    )
    def get(self, request: Request) -> Response:
        """Projects, filtered as the portal's list is, with their batches' totals (no key)."""
        return self.answer(request)


class PublicBatchListApi(_PublicList):
    kind = "batches"
    filters = BatchFilterSerializer

    @extend_schema(
        operation_id="public_batches_list",
        tags=["public register"],
        parameters=[BatchFilterSerializer],
        responses=responses({200: page_of("PublicBatchPage", BatchRowSerializer)}, 400),
    )
    def get(self, request: Request) -> Response:
        """Issued batches, filtered as the portal's list is (no key). ``status`` is the
        project's."""
        return self.answer(request)


class PublicRetirementListApi(_PublicList):
    kind = "retirements"
    filters = FilterSerializer

    @extend_schema(
        operation_id="public_retirements_list",
        tags=["public register"],
        parameters=[FilterSerializer],
        responses=responses(
            {200: page_of("PublicRetirementPage", RetirementRowSerializer, "entry_seq")}, 400
        ),
    )
    def get(self, request: Request) -> Response:
        """Retirements, filtered as the portal's list is (no key); ``after`` is an
        ``entry_seq``. ``jurisdiction`` filters by the project's; each row's ``jurisdiction``
        is where the retirement is claimed."""
        return self.answer(request)


class PublicBatchDetailApi(PublicApi):
    @extend_schema(
        operation_id="public_batches_retrieve",
        tags=["public register"],
        parameters=ID_PARAM,
        responses=responses({200: BatchDetailSerializer}, 404),
    )
    def get(self, request: Request, pk: str) -> Response:
        """One batch with its supply by bucket (no key)."""
        b = register.batch_by_pk(path_id(pk, "batch"))
        if b is None:
            raise NotFound(f"batch {pk} not found")
        s = register.batch_supply(b)
        row = register.batch_row(b)
        row["supply"] = {
            "issued_tco2e": format_tonnes(s.issued),
            "tradable_tco2e": format_tonnes(s.tradable),
            "escrowed_tco2e": format_tonnes(s.escrowed),
            "buffer_tco2e": format_tonnes(s.buffer),
            "retired_tco2e": format_tonnes(s.retired),
            "cancelled_tco2e": format_tonnes(s.cancelled),
        }
        return Response(row)


urlpatterns = [
    path("public/projects", PublicProjectListApi.as_view(), name="public-projects"),
    path("public/batches", PublicBatchListApi.as_view(), name="public-batches"),
    # <str:pk>: a non-integer id gets the API's JSON 404 (path_id).
    path("public/batches/<str:pk>", PublicBatchDetailApi.as_view(), name="public-batch"),
    path("public/retirements", PublicRetirementListApi.as_view(), name="public-retirements"),
]
