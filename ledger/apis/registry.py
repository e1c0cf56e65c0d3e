"""The registry's resources: the caller's organization and accounts, methodologies, projects,
batches, holdings. Projects, batches and methodologies are public registry data (any
authenticated caller reads them); accounts and holdings only their organization (or an
operator) sees."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from .. import services
from ..actors import Actor
from ..core.quantity import QuantityError, format_hectares, format_share, parse_hectares
from ..core.quantity import parse_share as _parse_share
from ..exceptions import InvalidInput, NotFound
from ..models import Account, Batch, Ecosystem, Holding, Methodology, Organization, Project
from .base import MAX_ID, BaseApi, TonnesField, page_params


def _int_filter(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer", detail={name: "invalid"}) from None
    if not 0 < value < MAX_ID:
        raise InvalidInput(f"{name} is out of range", detail={name: "out_of_range"})
    return value


def _paged(
    qs: QuerySet[Any], request: Request, serializer: type[serializers.Serializer]
) -> Response:
    after, limit = page_params(request)
    rows = list(qs.filter(pk__gt=after).order_by("pk")[:limit])
    return Response(
        {
            "results": serializer(rows, many=True).data,
            "next_after": rows[-1].pk if len(rows) == limit else None,
        }
    )


def _page_schema(name: str, item: serializers.Serializer) -> Any:
    from drf_spectacular.utils import inline_serializer

    return inline_serializer(
        name,
        {
            "results": item.__class__(many=True),
            "next_after": serializers.IntegerField(allow_null=True),
        },
    )


PAGE_PARAMS = [OpenApiParameter("after", int), OpenApiParameter("limit", int)]


@extend_schema_field({"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,4})?$", "example": "380"})
class HectaresField(serializers.Field):
    def to_internal_value(self, data: Any) -> int:
        try:
            return parse_hectares(data)
        except QuantityError as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from None

    def to_representation(self, value: int) -> str:
        return format_hectares(value)


@extend_schema_field({"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,2})?$", "example": "20"})
class ShareField(serializers.Field):
    def to_internal_value(self, data: Any) -> int:
        try:
            return _parse_share(data)
        except QuantityError as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from None

    def to_representation(self, value: int) -> str:
        return format_share(value)


# ---- organization and accounts ------------------------------------------------------------


class AccountOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    organization = serializers.IntegerField(source="organization_id")
    kind = serializers.CharField()
    name = serializers.CharField()


class OrganizationMeApi(BaseApi):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        handle = serializers.CharField()
        name = serializers.CharField()
        roles = serializers.ListField(child=serializers.CharField())
        accounts = AccountOutputSerializer(many=True)

    @extend_schema(
        responses={200: OutputSerializer}, operation_id="organization_me", tags=["registry"]
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request)
        org = Organization.objects.filter(pk=actor.organization_id).first()
        if org is None:
            raise NotFound("you act for no organization")
        return Response(
            self.OutputSerializer(
                {
                    "id": org.pk,
                    "handle": org.handle,
                    "name": org.name,
                    "roles": org.roles,
                    "accounts": list(org.accounts.order_by("pk")),
                }
            ).data
        )


def _visible_accounts(actor: Actor) -> QuerySet[Account]:
    qs = Account.objects.all()
    return qs if actor.is_operator else qs.filter(organization_id=actor.organization_id)


class AccountsApi(BaseApi):
    required_scopes = {"GET": "read", "POST": "transfer"}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)

    @extend_schema(
        parameters=PAGE_PARAMS,
        operation_id="accounts_list",
        tags=["registry"],
        responses={200: _page_schema("AccountPage", AccountOutputSerializer())},
    )
    def get(self, request: Request) -> Response:
        return _paged(_visible_accounts(self.actor(request)), request, AccountOutputSerializer)

    @extend_schema(
        request=InputSerializer,
        responses={201: AccountOutputSerializer},
        operation_id="accounts_open",
        tags=["registry"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = self.actor(request)

        def run() -> Response:
            if actor.organization_id is None:
                raise NotFound("you act for no organization")
            account = services.account_open(
                actor=actor, organization=actor.organization_id, name=data.validated_data["name"]
            )
            return Response(AccountOutputSerializer(account).data, status=201)

        return self.idempotent(request, run)


# ---- methodologies --------------------------------------------------------------------------


class MethodologyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    standard = serializers.CharField()
    ecosystems = serializers.ListField(child=serializers.CharField())


class MethodologiesApi(BaseApi):
    @extend_schema(
        parameters=PAGE_PARAMS,
        operation_id="methodologies_list",
        tags=["registry"],
        responses={200: _page_schema("MethodologyPage", MethodologyOutputSerializer())},
    )
    def get(self, request: Request) -> Response:
        return _paged(Methodology.objects.all(), request, MethodologyOutputSerializer)


# ---- projects -------------------------------------------------------------------------------


class ProjectOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    ecosystem = serializers.CharField()
    storage_pathway = serializers.CharField()
    methodology = serializers.CharField(source="methodology.code")
    jurisdiction = serializers.CharField()
    location = serializers.JSONField()
    area_ha = HectaresField(source="area_m2")
    registry = serializers.IntegerField(source="registry_id")
    developer = serializers.IntegerField(source="developer_id")
    validation_body = serializers.CharField()
    origin_registry = serializers.CharField()
    origin_id = serializers.CharField()
    status = serializers.CharField()


class ProjectsApi(BaseApi):
    required_scopes = {"GET": "read", "POST": "issue"}

    class InputSerializer(serializers.Serializer):
        code = serializers.CharField(max_length=64)
        name = serializers.CharField(max_length=300)
        ecosystem = serializers.ChoiceField(choices=Ecosystem.values)
        storage_pathway = serializers.CharField(max_length=20)
        methodology = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        jurisdiction = serializers.CharField(max_length=6)
        location = serializers.JSONField()
        area_ha = HectaresField()
        developer = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        validation_body = serializers.CharField(max_length=200)
        origin_registry = serializers.CharField(max_length=64, required=False, default="")
        origin_id = serializers.CharField(max_length=128, required=False, default="")
        status = serializers.CharField(max_length=16, required=False, default="registered")

    @extend_schema(
        parameters=[
            *PAGE_PARAMS,
            OpenApiParameter("ecosystem", str, enum=Ecosystem.values),
            OpenApiParameter("jurisdiction", str),
            OpenApiParameter("methodology", str),
            OpenApiParameter("status", str),
            OpenApiParameter("developer", int),
        ],
        operation_id="projects_list",
        tags=["registry"],
        responses={200: _page_schema("ProjectPage", ProjectOutputSerializer())},
    )
    def get(self, request: Request) -> Response:
        qs = Project.objects.select_related("methodology")
        q = request.query_params
        if q.get("ecosystem"):
            if q["ecosystem"] not in Ecosystem.values:
                raise InvalidInput("unknown ecosystem", detail={"ecosystem": "invalid_choice"})
            qs = qs.filter(ecosystem=q["ecosystem"])
        if q.get("jurisdiction"):
            qs = qs.filter(jurisdiction=q["jurisdiction"])
        if q.get("methodology"):
            qs = qs.filter(methodology__code=q["methodology"])
        if q.get("status"):
            qs = qs.filter(status=q["status"])
        if (developer := _int_filter(request, "developer")) is not None:
            qs = qs.filter(developer_id=developer)
        return _paged(qs, request, ProjectOutputSerializer)

    @extend_schema(
        request=InputSerializer,
        responses={201: ProjectOutputSerializer},
        operation_id="projects_register",
        tags=["registry"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = self.actor(request)
        fields = dict(data.validated_data)
        fields["area_m2"] = fields.pop("area_ha")

        def run() -> Response:
            if actor.organization_id is None:
                raise NotFound("you act for no organization")
            project = services.project_register(
                actor=actor, registry=actor.organization_id, **fields
            )
            return Response(ProjectOutputSerializer(project).data, status=201)

        return self.idempotent(request, run)


def _project(pk: int) -> Project:
    project = (
        Project.objects.select_related("methodology").filter(pk=pk).first() if pk < MAX_ID else None
    )
    if project is None:
        raise NotFound(f"project {pk} not found")
    return project


class ProjectDetailApi(BaseApi):
    required_scopes = {"GET": "read", "PATCH": "issue"}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=300, required=False)
        status = serializers.CharField(max_length=16, required=False)
        validation_body = serializers.CharField(max_length=200, required=False)
        location = serializers.JSONField(required=False)
        area_ha = HectaresField(required=False)
        storage_pathway = serializers.CharField(max_length=20, required=False)

    @extend_schema(
        responses={200: ProjectOutputSerializer},
        operation_id="projects_retrieve",
        tags=["registry"],
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(ProjectOutputSerializer(_project(pk)).data)

    @extend_schema(
        request=InputSerializer,
        responses={200: ProjectOutputSerializer},
        operation_id="projects_update",
        tags=["registry"],
    )
    def patch(self, request: Request, pk: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        if "area_ha" in changes:
            changes["area_m2"] = changes.pop("area_ha")
        project = _project(pk)
        # PATCH is idempotent by nature (setting fields twice is the same as once).
        with transaction.atomic(durable=True):
            updated = services.project_update(
                actor=self.actor(request), project=project.pk, **changes
            )
        return Response(ProjectOutputSerializer(_project(updated.pk)).data)


# ---- batches --------------------------------------------------------------------------------


class BatchOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    serial = serializers.CharField()
    project = serializers.IntegerField(source="project_id")
    monitoring_start = serializers.DateField()
    monitoring_end = serializers.DateField()
    vintage = serializers.IntegerField()
    verification_body = serializers.CharField()
    verification_report_sha256 = serializers.CharField()
    buffer_share = ShareField(source="buffer_share_bp")
    origin_registry = serializers.CharField()
    origin_tx_id = serializers.CharField(allow_null=True)
    issued = TonnesField()
    buffer_withheld = TonnesField()
    retired = TonnesField()
    cancelled = TonnesField()
    outstanding = serializers.SerializerMethodField()

    def get_outstanding(self, b: Batch) -> str:
        from ..core.quantity import format_tonnes

        return format_tonnes(b.issued - b.retired - b.cancelled)


class BatchesApi(BaseApi):
    required_scopes = {"GET": "read", "POST": "issue"}

    class InputSerializer(serializers.Serializer):
        project = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        monitoring_start = serializers.DateField()
        monitoring_end = serializers.DateField()
        vintage = serializers.IntegerField(required=False, min_value=1990, max_value=2200)
        verification_body = serializers.CharField(max_length=200)
        verification_report_sha256 = serializers.CharField(max_length=64)
        quantity = TonnesField()
        buffer_share = ShareField()
        holder = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
        origin_registry = serializers.CharField(max_length=64, required=False, default="")
        origin_tx_id = serializers.CharField(
            max_length=128, required=False, allow_null=True, default=None
        )

    @extend_schema(
        parameters=[
            *PAGE_PARAMS,
            OpenApiParameter("project", int),
            OpenApiParameter("vintage", int),
            OpenApiParameter("ecosystem", str, enum=Ecosystem.values),
        ],
        operation_id="batches_list",
        tags=["registry"],
        responses={200: _page_schema("BatchPage", BatchOutputSerializer())},
    )
    def get(self, request: Request) -> Response:
        qs = Batch.objects.all()
        if (project := _int_filter(request, "project")) is not None:
            qs = qs.filter(project_id=project)
        if (vintage := _int_filter(request, "vintage")) is not None:
            qs = qs.filter(vintage=vintage)
        eco = request.query_params.get("ecosystem")
        if eco:
            if eco not in Ecosystem.values:
                raise InvalidInput("unknown ecosystem", detail={"ecosystem": "invalid_choice"})
            qs = qs.filter(project__ecosystem=eco)
        return _paged(qs, request, BatchOutputSerializer)

    @extend_schema(
        request=InputSerializer,
        responses={201: BatchOutputSerializer},
        operation_id="batches_issue",
        tags=["registry"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields["buffer_share_bp"] = fields.pop("buffer_share")

        def run() -> Response:
            batch = services.batch_issue(actor=self.actor(request), **fields)
            return Response(BatchOutputSerializer(batch).data, status=201)

        return self.idempotent(request, run)


class BatchDetailApi(BaseApi):
    @extend_schema(
        responses={200: BatchOutputSerializer}, operation_id="batches_retrieve", tags=["registry"]
    )
    def get(self, request: Request, pk: int) -> Response:
        batch = Batch.objects.filter(pk=pk).first() if pk < MAX_ID else None
        if batch is None:
            raise NotFound(f"batch {pk} not found")
        return Response(BatchOutputSerializer(batch).data)


# ---- holdings -------------------------------------------------------------------------------


class HoldingOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.IntegerField(source="account_id")
    batch = serializers.IntegerField(source="batch_id")
    batch_serial = serializers.CharField(source="batch.serial")
    tradable = TonnesField()
    escrowed = TonnesField()


class HoldingsApi(BaseApi):
    @extend_schema(
        parameters=[*PAGE_PARAMS, OpenApiParameter("account", int), OpenApiParameter("batch", int)],
        operation_id="holdings_list",
        tags=["registry"],
        responses={200: _page_schema("HoldingPage", HoldingOutputSerializer())},
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request)
        qs = Holding.objects.select_related("batch").exclude(tradable=0, escrowed=0)
        if not actor.is_operator:
            qs = qs.filter(account__organization_id=actor.organization_id)
        if (account := _int_filter(request, "account")) is not None:
            qs = qs.filter(account_id=account)
        if (batch := _int_filter(request, "batch")) is not None:
            qs = qs.filter(batch_id=batch)
        return _paged(qs, request, HoldingOutputSerializer)


urlpatterns = [
    path("organization", OrganizationMeApi.as_view(), name="organization"),
    path("accounts", AccountsApi.as_view(), name="accounts"),
    path("methodologies", MethodologiesApi.as_view(), name="methodologies"),
    path("projects", ProjectsApi.as_view(), name="projects"),
    path("projects/<int:pk>", ProjectDetailApi.as_view(), name="project"),
    path("batches", BatchesApi.as_view(), name="batches"),
    path("batches/<int:pk>", BatchDetailApi.as_view(), name="batch"),
    path("holdings", HoldingsApi.as_view(), name="holdings"),
]
