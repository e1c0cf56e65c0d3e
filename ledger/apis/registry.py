"""The registry's resources under ``/api/v1/``: the caller's organization and accounts,
methodologies, projects, batches, holdings.

Who sees what: projects, batches and methodologies are public registry data (registries
publish them), so any authenticated caller reads them. Accounts and holdings are seen only by
their organization (or an operator); to anyone else an account is a 404, exactly like an id
that does not exist.

Lists are pages in id order: ``?after=<id>&limit=<1..500>`` (default 100) answers
``{"results": [...], "next_after": <id or null>}``. ``next_after`` is null when nothing follows
the page; otherwise pass it as ``after``. Ids only grow, so a walk sees every row that existed
when it started exactly once, whatever is added meanwhile. Query parameters are validated like
bodies: a bad one is a 400 naming the parameter and its code, never a 500.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet
from django.urls import path
from drf_spectacular.utils import (
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from .. import policy, services
from ..actors import Actor
from ..core import origin
from ..core.quantity import format_tonnes
from ..exceptions import NotFound, PermissionDenied
from ..inputs import (
    CODE,
    JURISDICTION,
    MAX_ID,
    Body,
    Described,
    HectaresField,
    IssueBody,
    OriginRegistryField,
    ShareField,
    TonnesField,
    pattern,
)
from ..models import (
    Account,
    Batch,
    Ecosystem,
    Holding,
    Methodology,
    Organization,
    Project,
    StoragePathway,
)
from .base import ID_PARAM as _ID
from .base import BaseApi, ListApi, PageSerializer, RetrieveApi, list_schema, retrieve_schema
from .base import on_one_path as _on_one_path
from .base import page_of as _page_of
from .base import path_id as _path_id
from .base import responses as _responses

# ---- shared fields and helpers ------------------------------------------------------------------


_GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
)


def _geometry_schema() -> dict[str, Any]:
    """RFC 7946 §3.1 as ``services.checks._geometry`` takes it: each type's nesting of positions; a
    position is a longitude and a latitude (and an altitude), each a decimal string of at most
    12 decimals or a small integer. What JSON Schema cannot say, the service still checks:
    latitudes within ±90 and polygon rings that end where they start."""
    coordinate = {
        "oneOf": [
            {
                "type": "string",
                "pattern": r"^-?(180(\.0{1,12})?|(0?[0-9]{1,2}|1[0-7][0-9])(\.[0-9]{1,12})?)$",
            },
            {"type": "integer", "minimum": -180, "maximum": 180},
        ]
    }
    position: dict[str, Any] = {"type": "array", "items": coordinate, "minItems": 2, "maxItems": 3}

    def many(items: dict[str, Any], least: int = 1) -> dict[str, Any]:
        return {"type": "array", "items": items, "minItems": least}

    ring = many(position, 4)
    shapes = {
        "Point": position,
        "MultiPoint": many(position),
        "LineString": many(position, 2),
        "MultiLineString": many(many(position, 2)),
        "Polygon": many(ring),
        "MultiPolygon": many(many(ring)),
    }
    return {
        "type": "object",
        "description": "A GeoJSON geometry (WGS 84, longitude first). Coordinates are decimal "
        'strings such as "121.95" (or small integers), never floats: the ledger entry signs '
        "them as given. Latitudes are within ±90; a polygon's rings end at their first "
        "position.",
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": [name]},
                    "coordinates": coordinates,
                },
                "required": ["type", "coordinates"],
            }
            for name, coordinates in shapes.items()
        ],
        "example": {"type": "Point", "coordinates": ["110.4", "21.2"]},
    }


class GeometryField(Described, serializers.JSONField):
    """The shape is checked by the service (``project_register``), which owns the rule. An
    answer may hold a geometry registered before that check (their entries keep verifying)."""

    def openapi(self, direction: str) -> dict[str, Any]:
        if direction == "request":
            return _geometry_schema()
        return {
            "type": "object",
            "description": "A GeoJSON geometry (WGS 84), coordinates as registered",
            "properties": {
                "type": {"type": "string", "enum": list(_GEOMETRY_TYPES)},
                "coordinates": {"type": "array", "items": {}},
            },
            "required": ["type", "coordinates"],
        }


# ---- organization and accounts ------------------------------------------------------------------


class AccountOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    organization = serializers.IntegerField(source="organization_id")
    kind = serializers.ChoiceField(choices=Account.Kind.values)
    name = serializers.CharField()


class HoldingOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.IntegerField(source="account_id")
    batch = serializers.IntegerField(source="batch_id")
    batch_serial = serializers.CharField(source="batch.serial")
    tradable = TonnesField()
    escrowed = TonnesField()


def _positions(actor: Actor) -> QuerySet[Holding]:
    # A holding that went back to zero (all sold, retired or cancelled) is history, not a
    # position: the ledger keeps that history.
    return policy.holdings_visible_to(actor).select_related("batch").exclude(tradable=0, escrowed=0)


class OrganizationRetrieveApi(BaseApi):
    required_scope = "read"

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        handle = serializers.CharField()
        name = serializers.CharField()
        name_zh = serializers.CharField(help_text='the name in Chinese, "" when none was given')
        roles = serializers.ListField(child=serializers.CharField())
        accounts = AccountOutputSerializer(many=True, help_text="by id")

    @extend_schema(
        operation_id="organization_retrieve",
        tags=["registry"],
        responses=_responses({200: OutputSerializer}, 404),
    )
    def get(self, request: Request) -> Response:
        """The organization the caller acts for, and its accounts."""
        org = Organization.objects.filter(pk=self.actor(request).owner_id).first()
        if org is None:  # a signed-in user who belongs to no organization
            raise NotFound("you act for no organization")
        return Response(self.OutputSerializer(org).data)


class AccountListApi(ListApi):
    output = AccountOutputSerializer

    def rows(self, actor: Actor, params: dict[str, Any]) -> QuerySet[Account]:
        return policy.accounts_visible_to(actor)

    @list_schema(
        "accounts_list",
        "registry",
        PageSerializer,
        _page_of("AccountPage", AccountOutputSerializer),
    )
    def get(self, request: Request) -> Response:
        """The caller's organization's accounts (an operator's key: every account)."""
        return self.paged(request)


class AccountOpenApi(BaseApi):
    required_scope = "transfer"

    class InputSerializer(Body):
        name = serializers.CharField(max_length=200)

    @extend_schema(
        operation_id="accounts_open",
        tags=["registry"],
        request=InputSerializer,
        responses=_responses({201: AccountOutputSerializer}, 400, 404, 409, 422),
    )
    def post(self, request: Request) -> Response:
        """Open a holding account for the caller's organization."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = self.actor(request)
        if actor.organization_id is None:
            raise NotFound("you act for no organization")
        organization = actor.organization_id

        def run() -> Response:
            account = services.account_open(
                actor=actor, organization=organization, name=data.validated_data["name"]
            )
            return Response(AccountOutputSerializer(account).data, status=201)

        return self.idempotent(request, run)


class AccountRetrieveApi(RetrieveApi):
    what = "account"

    class OutputSerializer(AccountOutputSerializer):
        holdings = HoldingOutputSerializer(
            many=True, source="positions", help_text="non-zero positions, by id"
        )

    output = OutputSerializer

    def rows(self, actor: Actor) -> QuerySet[Account]:
        positions = Prefetch("holdings", _positions(actor).order_by("pk"), "positions")
        return policy.accounts_visible_to(actor).prefetch_related(positions)

    @retrieve_schema("accounts_retrieve", "registry", OutputSerializer)
    def get(self, request: Request, pk: str) -> Response:
        """One of the caller's accounts with what it holds. For an account with very many
        positions, page through ``GET /holdings?account=<id>`` instead."""
        return self.one(request, pk)


# ---- methodologies ------------------------------------------------------------------------------


class MethodologyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    name_zh = serializers.CharField(help_text='the name in Chinese, "" when none was given')
    standard = serializers.CharField()
    # CharField, not ChoiceField: the schema would name the same enum twice (Ecosystem[s]Enum).
    ecosystems = serializers.ListField(
        child=serializers.CharField(), help_text="ecosystem values it covers; empty: any"
    )


class MethodologyListApi(ListApi):
    output = MethodologyOutputSerializer

    def rows(self, actor: Actor, params: dict[str, Any]) -> QuerySet[Methodology]:
        return Methodology.objects.all()

    @list_schema(
        "methodologies_list",
        "registry",
        PageSerializer,
        _page_of("MethodologyPage", MethodologyOutputSerializer),
    )
    def get(self, request: Request) -> Response:
        """The methodologies a project may declare (reference data, public)."""
        return self.paged(request)


class MethodologyRetrieveApi(RetrieveApi):
    what = "methodology"
    output = MethodologyOutputSerializer

    def rows(self, actor: Actor) -> QuerySet[Methodology]:
        return Methodology.objects.all()

    @retrieve_schema("methodologies_retrieve", "registry", MethodologyOutputSerializer)
    def get(self, request: Request, pk: str) -> Response:
        """One methodology (public)."""
        return self.one(request, pk)


# ---- projects -----------------------------------------------------------------------------------


class ProjectOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    name_zh = serializers.CharField(help_text='the name in Chinese, "" when none was given')
    ecosystem = serializers.ChoiceField(choices=Ecosystem.values)
    storage_pathway = serializers.ChoiceField(choices=StoragePathway.values)
    methodology = serializers.IntegerField(source="methodology_id")
    methodology_code = serializers.CharField(source="methodology.code")
    jurisdiction = serializers.CharField()
    location = GeometryField()
    area_ha = HectaresField(source="area_m2")
    registry = serializers.IntegerField(source="registry_id")
    developer = serializers.IntegerField(source="developer_id")
    validation_body = serializers.CharField()
    origin_registry = serializers.CharField()
    origin_id = serializers.CharField()
    status = serializers.ChoiceField(choices=Project.Status.values)


def _project(pk: str) -> Project:
    found = Project.objects.select_related("methodology").filter(pk=_path_id(pk, "project")).first()
    if found is None:
        raise NotFound(f"project {pk} not found")
    return found


class ProjectListApi(ListApi):
    class FilterSerializer(PageSerializer):
        ecosystem = serializers.ChoiceField(choices=Ecosystem.values, required=False)
        jurisdiction = pattern(
            r"[A-Z]{2}(-[A-Z0-9]{1,3})?",
            required=False,
            help_text="an ISO 3166-2 subdivision (CN-GD), or a country (CN) for all of its",
        )
        methodology = serializers.CharField(
            max_length=64, required=False, help_text="a methodology's code or id"
        )
        status = serializers.ChoiceField(choices=Project.Status.values, required=False)
        developer = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
        registry = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)

    output = ProjectOutputSerializer

    def rows(self, actor: Actor, params: dict[str, Any]) -> QuerySet[Project]:
        qs = Project.objects.select_related("methodology")
        for name in ("ecosystem", "status"):
            if name in params:
                qs = qs.filter(**{name: params[name]})
        if "developer" in params:
            qs = qs.filter(developer_id=params["developer"])
        if "registry" in params:
            qs = qs.filter(registry_id=params["registry"])
        if (where := params.get("jurisdiction")) is not None:
            # A country alone (CN) stands for all of its subdivisions (CN-GD, CN-ZJ, ...).
            qs = qs.filter(
                Q(jurisdiction=where) if "-" in where else Q(jurisdiction__startswith=f"{where}-")
            )
        if (method := params.get("methodology")) is not None:
            match = Q(methodology__code=method)
            if method.isascii() and method.isdigit() and len(method) <= 18:
                match |= Q(methodology_id=int(method))
            qs = qs.filter(match)
        return qs

    @list_schema(
        "projects_list",
        "registry",
        FilterSerializer,
        _page_of("ProjectPage", ProjectOutputSerializer),
    )
    def get(self, request: Request) -> Response:
        """Every registry's projects (public), filtered."""
        return self.paged(request)


class ProjectRegisterApi(BaseApi):
    required_scope = "issue"

    class InputSerializer(Body):
        code = pattern(CODE, max_length=64)
        name = serializers.CharField(max_length=300)
        name_zh = serializers.CharField(
            max_length=300,
            required=False,
            allow_blank=True,
            default="",
            help_text="the name in Chinese, if the registrar has one (shown on Chinese pages)",
        )
        ecosystem = serializers.ChoiceField(choices=Ecosystem.values)
        storage_pathway = serializers.ChoiceField(choices=StoragePathway.values)
        methodology = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="id")
        jurisdiction = pattern(JURISDICTION, help_text="ISO 3166-2, e.g. CN-GD")
        location = GeometryField()
        area_ha = HectaresField()
        developer = serializers.IntegerField(
            min_value=1, max_value=MAX_ID, help_text="the developer organization's id"
        )
        validation_body = serializers.CharField(max_length=200)
        origin_registry = OriginRegistryField(
            help_text=(
                "for a project imported from another registry, one of "
                + ", ".join(f"`{r.code}` ({r.name})" for r in origin.REGISTRIES)
                + " (or another spelling of one, or the handle of a registry on this ledger); "
                "default: this registry"
            ),
        )
        origin_id = serializers.CharField(
            max_length=128,
            required=False,
            allow_blank=True,
            default="",
            help_text=(
                "its id there (Verra: VCS-2236 or 2236; Gold Standard: GS1234); default: the "
                "code. Compared after normalisation (NFKC, case-folded, invisible characters "
                "removed): another spelling of a registered id is 409 duplicate_origin"
            ),
        )
        status = serializers.ChoiceField(
            choices=Project.Status.values, default=Project.Status.REGISTERED
        )

    @extend_schema(
        operation_id="projects_register",
        tags=["registry"],
        request=InputSerializer,
        responses=_responses({201: ProjectOutputSerializer}, 400, 404, 409, 422),
    )
    def post(self, request: Request) -> Response:
        """Register a project; the caller's organization (a registry) is its registry."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = self.actor(request)
        if actor.organization_id is None:
            raise NotFound("you act for no organization")
        registry = actor.organization_id
        fields = dict(data.validated_data)
        fields["area_m2"] = fields.pop("area_ha")

        def run() -> Response:
            project = services.project_register(actor=actor, registry=registry, **fields)
            return Response(ProjectOutputSerializer(project).data, status=201)

        return self.idempotent(request, run)


class ProjectRetrieveApi(RetrieveApi):
    what = "project"
    output = ProjectOutputSerializer

    def rows(self, actor: Actor) -> QuerySet[Project]:
        return Project.objects.select_related("methodology")

    @retrieve_schema("projects_retrieve", "registry", ProjectOutputSerializer)
    def get(self, request: Request, pk: str) -> Response:
        """One project (public)."""
        return self.one(request, pk)


class ProjectUpdateApi(BaseApi):
    required_scope = "issue"

    class InputSerializer(Body):
        name = serializers.CharField(max_length=300, required=False)
        name_zh = serializers.CharField(
            max_length=300, required=False, allow_blank=True, help_text='"" removes it'
        )
        status = serializers.ChoiceField(choices=Project.Status.values, required=False)
        validation_body = serializers.CharField(max_length=200, required=False)
        location = GeometryField(required=False)
        area_ha = HectaresField(required=False)
        storage_pathway = serializers.ChoiceField(choices=StoragePathway.values, required=False)

        refuses_other_members = True  # validate() below; the schema says additionalProperties

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            # A field that cannot change (code, ecosystem, methodology, registry, ...) is
            # refused, not silently ignored: the caller would believe it changed.
            if isinstance(self.initial_data, dict):
                fixed = sorted(set(self.initial_data) - set(self.fields))
                if fixed:
                    raise serializers.ValidationError(
                        {
                            k: serializers.ErrorDetail("cannot be changed", "read_only")
                            for k in fixed
                        }
                    )
            return attrs

    @extend_schema(
        operation_id="projects_update",
        tags=["registry"],
        parameters=_ID,
        request=InputSerializer,
        responses=_responses({200: ProjectOutputSerializer}, 400, 404),
    )
    def patch(self, request: Request, pk: str) -> Response:
        """Change a project's metadata. Only its registry (or an operator) may."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        if "area_ha" in changes:
            changes["area_m2"] = changes.pop("area_ha")
        actor = self.actor(request)
        project = _project(pk)
        # The project is public, so a 404 would hide nothing and only mislead: the caller
        # sees it but may not change it. (The service's own check answers 404, for callers
        # that have not looked it up; a project's registry never changes.)
        if not actor.may_act_for(project.registry_id):
            raise PermissionDenied("only the project's registry changes it")
        # PATCH sets fields, so repeating it is harmless: no Idempotency-Key needed.
        with transaction.atomic(durable=True):
            services.project_update(actor=actor, project=project.pk, **changes)
        return Response(ProjectOutputSerializer(_project(pk)).data)


ProjectsApi = _on_one_path("ProjectsApi", ProjectListApi, ProjectRegisterApi)
ProjectDetailApi = _on_one_path("ProjectDetailApi", ProjectRetrieveApi, ProjectUpdateApi)


# ---- batches ------------------------------------------------------------------------------------


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
    buffer_withheld = TonnesField(help_text="part of issued, credited to the buffer pool")
    retired = TonnesField()
    cancelled = TonnesField()
    outstanding = serializers.SerializerMethodField(
        help_text="tradable + escrowed over every holding, buffer pool included"
    )

    @extend_schema_field(TonnesField())
    def get_outstanding(self, batch: Batch) -> str:
        # The supply invariant (issued = tradable + escrowed + retired + cancelled, checked
        # by the verifier) gives the holdings' sum from the batch row alone.
        return format_tonnes(batch.issued - batch.retired - batch.cancelled)


class BatchListApi(ListApi):
    class FilterSerializer(PageSerializer):
        project = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
        vintage = serializers.IntegerField(min_value=1990, max_value=2200, required=False)
        ecosystem = serializers.ChoiceField(choices=Ecosystem.values, required=False)

    output = BatchOutputSerializer

    def rows(self, actor: Actor, params: dict[str, Any]) -> QuerySet[Batch]:
        qs = Batch.objects.all()
        if "project" in params:
            qs = qs.filter(project_id=params["project"])
        if "vintage" in params:
            qs = qs.filter(vintage=params["vintage"])
        if "ecosystem" in params:
            qs = qs.filter(project__ecosystem=params["ecosystem"])
        return qs

    @list_schema(
        "batches_list", "registry", FilterSerializer, _page_of("BatchPage", BatchOutputSerializer)
    )
    def get(self, request: Request) -> Response:
        """Every issued batch (public), with its totals."""
        return self.paged(request)


class BatchIssueApi(BaseApi):
    required_scope = "issue"

    class InputSerializer(IssueBody):  # bulk import's "issue" operations too
        pass

    @extend_schema(
        operation_id="batches_issue",
        tags=["registry"],
        request=InputSerializer,
        responses=_responses({201: BatchOutputSerializer}, 400, 404, 409, 422),
    )
    def post(self, request: Request) -> Response:
        """Issue verified credits for one monitoring period of a project of the caller's."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields["buffer_share_bp"] = fields.pop("buffer_share")
        actor = self.actor(request)

        def run() -> Response:
            batch = services.batch_issue(actor=actor, **fields)
            return Response(BatchOutputSerializer(batch).data, status=201)

        return self.idempotent(request, run)


class BatchRetrieveApi(RetrieveApi):
    what = "batch"
    output = BatchOutputSerializer

    def rows(self, actor: Actor) -> QuerySet[Batch]:
        return Batch.objects.all()

    @retrieve_schema("batches_retrieve", "registry", BatchOutputSerializer)
    def get(self, request: Request, pk: str) -> Response:
        """One batch (public), with its totals."""
        return self.one(request, pk)


BatchesApi = _on_one_path("BatchesApi", BatchListApi, BatchIssueApi)


# ---- holdings -----------------------------------------------------------------------------------


class HoldingListApi(ListApi):
    class FilterSerializer(PageSerializer):
        account = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
        batch = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)

    output = HoldingOutputSerializer

    def rows(self, actor: Actor, params: dict[str, Any]) -> QuerySet[Holding]:
        qs = _positions(actor)
        if "account" in params:
            qs = qs.filter(account_id=params["account"])
        if "batch" in params:
            qs = qs.filter(batch_id=params["batch"])
        return qs

    @list_schema(
        "holdings_list",
        "registry",
        FilterSerializer,
        _page_of("HoldingPage", HoldingOutputSerializer),
    )
    def get(self, request: Request) -> Response:
        """The caller's organization's non-zero positions (an operator's key: everyone's)."""
        return self.paged(request)


AccountsApi = _on_one_path("AccountsApi", AccountListApi, AccountOpenApi)

urlpatterns = [
    path("organization", OrganizationRetrieveApi.as_view(), name="organization"),
    path("accounts", AccountsApi.as_view(), name="accounts"),
    # <str:pk>, not <int:pk>: a non-integer id must get the API's JSON 404 (_path_id).
    path("accounts/<str:pk>", AccountRetrieveApi.as_view(), name="account"),
    path("methodologies", MethodologyListApi.as_view(), name="methodologies"),
    path("methodologies/<str:pk>", MethodologyRetrieveApi.as_view(), name="methodology"),
    path("projects", ProjectsApi.as_view(), name="projects"),
    path("projects/<str:pk>", ProjectDetailApi.as_view(), name="project"),
    path("batches", BatchesApi.as_view(), name="batches"),
    path("batches/<str:pk>", BatchRetrieveApi.as_view(), name="batch"),
    path("holdings", HoldingListApi.as_view(), name="holdings"),
]
