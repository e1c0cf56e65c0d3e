"""Onboarding by API (``auctions/onboarding.py``): applications to bid in an auction and the
operator's decisions, deposits recorded, released and forfeited, bidder and trustee
organizations registered. The operator's side needs the ``onboard`` scope (and an organization
with the operator role); applying and withdrawing are a bidder's, with ``bid``.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ledger.apis.base import (
    ID_PARAM,
    MAX_ID,
    BaseApi,
    Body,
    PageSerializer,
    decimal_regex,
    on_one_path,
    page_of,
    page_rows,
    path_id,
    pattern,
    query,
    responses,
)
from ledger.apis.registry import AccountOutputSerializer
from ledger.core.quantity import QuantityError, format_money, parse_money
from ledger.exceptions import NotFound

from . import onboarding, policy, selectors, services
from .models import Application, Auction, Bidder, Deposit

_MONEY_ABOVE_ZERO = decimal_regex(2, 13, zero=False)
_HANDLE = r"[a-z0-9][a-z0-9._-]{0,63}"  # what organization_register takes
_PARAMS = [
    ID_PARAM[0],
    OpenApiParameter(
        "bidder", int, OpenApiParameter.PATH, description="the bidder organization's id"
    ),
]


def _auction(pk: str) -> Auction:
    a = selectors.auction_get(path_id(pk, "auction"))
    if a is None:
        raise NotFound(f"auction {pk} not found")
    return a


class ApplicationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    auction = serializers.IntegerField(source="auction_id")
    bidder = serializers.IntegerField(source="bidder_id")
    state = serializers.ChoiceField(choices=Application.State.values)
    reason = serializers.CharField(help_text="why it was refused; empty otherwise")
    entry_seq = serializers.IntegerField(help_text="the ledger entry that last changed it")


@extend_schema_field(
    {"type": "string", "pattern": r"^(0|[1-9][0-9]*)(\.[0-9]{2})?$", "example": "30000.00"}
)
class _DepositAmount(serializers.Field):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, source="*", **kwargs)

    def to_representation(self, d: Deposit) -> str:
        return format_money(d.amount, d.auction.currency)


class DepositOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    auction = serializers.IntegerField(source="auction_id")
    bidder = serializers.IntegerField(source="bidder_id")
    amount = _DepositAmount(help_text="in the auction's currency")
    state = serializers.ChoiceField(choices=Deposit.State.values)
    entry_seq = serializers.IntegerField(help_text="the ledger entry that last changed it")


# ---- applications ----------------------------------------------------------------------------


class ApplicationListApi(BaseApi):
    required_scope = "read"

    class FilterSerializer(PageSerializer):
        state = serializers.ChoiceField(choices=Application.State.values, required=False)

    @extend_schema(
        operation_id="auctions_applications_list",
        tags=["onboarding"],
        parameters=[ID_PARAM[0], FilterSerializer],
        responses=responses(
            {200: page_of("ApplicationPage", ApplicationOutputSerializer)}, 400, 404
        ),
    )
    def get(self, request: Request, pk: str) -> Response:
        """Applications to bid in this auction: the caller's own (an operator's key: every
        applicant's, e.g. ``?state=pending`` to decide on)."""
        a = _auction(pk)
        params = query(self.FilterSerializer, request)
        qs = policy.applications_visible_to(self.actor(request)).filter(auction=a)
        if "state" in params:
            qs = qs.filter(state=params["state"])
        rows, next_after = page_rows(qs, params)
        return Response(
            {
                "results": ApplicationOutputSerializer(rows, many=True).data,
                "next_after": next_after,
            }
        )


class ApplicationSubmitApi(BaseApi):
    required_scope = "bid"

    class InputSerializer(Body):
        bidder = serializers.IntegerField(
            min_value=1,
            max_value=MAX_ID,
            required=False,
            help_text="an operator applying for a bidder organization; otherwise the caller's own",
        )

    @extend_schema(
        operation_id="auctions_applications_create",
        tags=["onboarding"],
        request=InputSerializer,
        parameters=ID_PARAM,
        responses=responses({201: ApplicationOutputSerializer}, 400, 403, 404, 409, 422),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Apply to bid in this auction (pending until an operator decides). Once an
        organization has applied to an auction, only an approved application lets it bid there.
        After a refusal or a withdrawal it may apply again."""
        auction_id = path_id(pk, "auction")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            app = onboarding.application_submit(
                actor=self.actor(request), auction=auction_id, **data.validated_data
            )
            return Response(ApplicationOutputSerializer(app).data, status=201)

        return self.idempotent(request, run)


ApplicationsApi = on_one_path("ApplicationsApi", ApplicationListApi, ApplicationSubmitApi)


class ApplicationApproveApi(BaseApi):
    required_scope = "onboard"

    @extend_schema(
        operation_id="auctions_applications_approve",
        tags=["onboarding"],
        request=None,
        parameters=_PARAMS,
        responses=responses({200: ApplicationOutputSerializer}, 403, 404, 409),
    )
    def post(self, request: Request, pk: str, bidder: str) -> Response:
        """Admit a pending applicant to bid in this auction (operators)."""
        auction_id, bidder_id = path_id(pk, "auction"), path_id(bidder, "organization")

        def run() -> Response:
            app = onboarding.application_approve(
                actor=self.actor(request), auction=auction_id, bidder=bidder_id
            )
            return Response(ApplicationOutputSerializer(app).data)

        return self.idempotent(request, run)


class _Reason(Body):
    reason = serializers.CharField(max_length=200, help_text="recorded on the ledger")


class ApplicationRefuseApi(BaseApi):
    required_scope = "onboard"

    class InputSerializer(_Reason):
        pass

    @extend_schema(
        operation_id="auctions_applications_refuse",
        tags=["onboarding"],
        request=InputSerializer,
        parameters=_PARAMS,
        responses=responses({200: ApplicationOutputSerializer}, 400, 403, 404, 409),
    )
    def post(self, request: Request, pk: str, bidder: str) -> Response:
        """Refuse a pending application, saying why (operators). Its deposit, if any, stays
        held until released or forfeited."""
        auction_id, bidder_id = path_id(pk, "auction"), path_id(bidder, "organization")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            app = onboarding.application_refuse(
                actor=self.actor(request),
                auction=auction_id,
                bidder=bidder_id,
                reason=data.validated_data["reason"],
            )
            return Response(ApplicationOutputSerializer(app).data)

        return self.idempotent(request, run)


class ApplicationWithdrawApi(BaseApi):
    required_scope = "bid"

    @extend_schema(
        operation_id="auctions_applications_withdraw",
        tags=["onboarding"],
        request=None,
        parameters=_PARAMS,
        responses=responses({200: ApplicationOutputSerializer}, 404, 409),
    )
    def post(self, request: Request, pk: str, bidder: str) -> Response:
        """Withdraw the caller's application (pending or approved; an operator: anyone's). Its
        bids must be withdrawn first; afterwards it may not bid in this auction."""
        auction_id, bidder_id = path_id(pk, "auction"), path_id(bidder, "organization")

        def run() -> Response:
            app = onboarding.application_withdraw(
                actor=self.actor(request), auction=auction_id, bidder=bidder_id
            )
            return Response(ApplicationOutputSerializer(app).data)

        return self.idempotent(request, run)


# ---- deposits --------------------------------------------------------------------------------


class DepositListApi(BaseApi):
    required_scope = "read"

    class FilterSerializer(PageSerializer):
        state = serializers.ChoiceField(choices=Deposit.State.values, required=False)

    @extend_schema(
        operation_id="auctions_deposits_list",
        tags=["onboarding"],
        parameters=[ID_PARAM[0], FilterSerializer],
        responses=responses({200: page_of("DepositPage", DepositOutputSerializer)}, 400, 404),
    )
    def get(self, request: Request, pk: str) -> Response:
        """Deposits for this auction: the caller's own (an operator's key: every bidder's)."""
        a = _auction(pk)
        params = query(self.FilterSerializer, request)
        qs = (
            policy.deposits_visible_to(self.actor(request))
            .filter(auction=a)
            .select_related("auction")
        )
        if "state" in params:
            qs = qs.filter(state=params["state"])
        rows, next_after = page_rows(qs, params)
        return Response(
            {"results": DepositOutputSerializer(rows, many=True).data, "next_after": next_after}
        )


class DepositRecordApi(BaseApi):
    required_scope = "onboard"

    class InputSerializer(Body):
        bidder = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        amount = pattern(
            _MONEY_ABOVE_ZERO,
            help_text="received, in the auction's currency (its decimals), e.g. 30000.00; a "
            "second amount tops the deposit up",
        )

    @extend_schema(
        operation_id="auctions_deposits_record",
        tags=["onboarding"],
        request=InputSerializer,
        parameters=ID_PARAM,
        responses=responses({200: DepositOutputSerializer}, 400, 403, 404, 409),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Record a deposit received from a bidder for this auction, before it closes
        (operators). Money moves outside the registry; the ledger records the amount."""
        a = _auction(pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            amount = parse_money(data.validated_data["amount"], a.currency, "amount")
        except QuantityError as exc:
            raise serializers.ValidationError(
                {"amount": [serializers.ErrorDetail(exc.message, code=exc.code)]}
            ) from None

        def run() -> Response:
            deposit = services.deposit_record(
                actor=self.actor(request),
                auction=a.pk,
                bidder=data.validated_data["bidder"],
                amount=amount,
            )
            deposit.auction = a
            return Response(DepositOutputSerializer(deposit).data)

        return self.idempotent(request, run)


class _DepositOutApi(BaseApi):
    required_scope = "onboard"
    service: Any = None

    class InputSerializer(_Reason):
        pass

    def post(self, request: Request, pk: str, bidder: str) -> Response:
        auction_id, bidder_id = path_id(pk, "auction"), path_id(bidder, "organization")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        service = type(self).service

        def run() -> Response:
            deposit = service(
                actor=self.actor(request),
                auction=auction_id,
                bidder=bidder_id,
                reason=data.validated_data["reason"],
            )
            return Response(DepositOutputSerializer(deposit).data)

        return self.idempotent(request, run)


class DepositReleaseApi(_DepositOutApi):
    service = staticmethod(onboarding.deposit_release)

    @extend_schema(
        operation_id="auctions_deposits_release",
        tags=["onboarding"],
        request=_DepositOutApi.InputSerializer,
        parameters=_PARAMS,
        responses=responses({200: DepositOutputSerializer}, 400, 403, 404, 409),
    )
    def post(self, request: Request, pk: str, bidder: str) -> Response:
        """Give a held deposit back before the auction's settlement would (operators): its
        bidder was refused, withdrew, or has no bid standing."""
        return super().post(request, pk, bidder)


class DepositForfeitApi(_DepositOutApi):
    service = staticmethod(onboarding.deposit_forfeit)

    @extend_schema(
        operation_id="auctions_deposits_forfeit",
        tags=["onboarding"],
        request=_DepositOutApi.InputSerializer,
        parameters=_PARAMS,
        responses=responses({200: DepositOutputSerializer}, 400, 403, 404, 409),
    )
    def post(self, request: Request, pk: str, bidder: str) -> Response:
        """Keep a held deposit as the auction's terms allow, saying why (operators): its bidder
        has no bid standing. A winner who does not pay forfeits its deposit by the award's
        default, not here."""
        return super().post(request, pk, bidder)


DepositsApi = on_one_path("DepositsApi", DepositListApi, DepositRecordApi)


# ---- organizations ---------------------------------------------------------------------------


class OrganizationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    handle = serializers.CharField()
    name = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    accounts = AccountOutputSerializer(many=True, help_text="by id")


class OrganizationOnboardApi(BaseApi):
    required_scope = "onboard"

    class InputSerializer(Body):
        handle = pattern(
            _HANDLE, help_text="unique: lowercase letters, digits, '.', '_', '-' (at most 64)"
        )
        name = serializers.CharField(max_length=200)
        roles = serializers.ListField(
            child=serializers.ChoiceField(choices=[str(r) for r in onboarding.ONBOARDING_ROLES]),
            min_length=1,
            max_length=2,
        )

    @extend_schema(
        operation_id="organizations_onboard",
        tags=["onboarding"],
        request=InputSerializer,
        responses=responses({201: OrganizationOutputSerializer}, 400, 403, 409),
    )
    def post(self, request: Request) -> Response:
        """Register a bidder or trustee organization (operators; ``org.register`` on the
        ledger). A bidder gets a holding account for its awards; a trustee then registers its
        keys (``POST /trustee-keys``) with a key of its own."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            org = onboarding.organization_onboard(actor=self.actor(request), **data.validated_data)
            return Response(OrganizationOutputSerializer(org).data, status=201)

        return self.idempotent(request, run)


class BidderOutputSerializer(serializers.Serializer):
    organization = serializers.IntegerField(source="organization_id")
    status = serializers.ChoiceField(choices=Bidder.Status.choices)
    entry_seq = serializers.IntegerField(help_text="the bidder.status entry that set it")


_ORG_PARAM = [
    OpenApiParameter("pk", int, OpenApiParameter.PATH, description="the organization's id")
]


class _BidderStatusApi(BaseApi):
    """An organization's standing status as a bidder (``onboarding.admitted``): an approval
    admits it to every auction it has not applied to (an application decides where it applied);
    a suspension keeps it from bidding anywhere, applications approved or not."""

    required_scope = "onboard"
    service: Any = None

    def post(self, request: Request, pk: str) -> Response:
        organization = path_id(pk, "organization")
        service = type(self).service

        def run() -> Response:
            bidder = service(actor=self.actor(request), organization=organization)
            return Response(BidderOutputSerializer(bidder).data)

        return self.idempotent(request, run)


class BidderApproveApi(_BidderStatusApi):
    service = staticmethod(services.bidder_approve)

    @extend_schema(
        operation_id="organizations_bidder_approve",
        tags=["onboarding"],
        request=None,
        parameters=_ORG_PARAM,
        responses=responses({200: BidderOutputSerializer}, 403, 404, 422),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Approve an organization with the bidder role to bid (operators; ``bidder.status``
        on the ledger). Approving an approved bidder changes nothing and appends nothing."""
        return super().post(request, pk)


class BidderSuspendApi(_BidderStatusApi):
    service = staticmethod(services.bidder_suspend)

    @extend_schema(
        operation_id="organizations_bidder_suspend",
        tags=["onboarding"],
        request=None,
        parameters=_ORG_PARAM,
        responses=responses({200: BidderOutputSerializer}, 403, 404),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Suspend a bidder (operators; ``bidder.status`` on the ledger): from its next bid on
        it bids nowhere, whatever its applications; bids already made stand. Suspending a
        suspended bidder changes nothing and appends nothing."""
        return super().post(request, pk)


urlpatterns = [
    path("organizations", OrganizationOnboardApi.as_view(), name="organizations"),
    path(
        "organizations/<str:pk>/bidder/approve",
        BidderApproveApi.as_view(),
        name="organization-bidder-approve",
    ),
    path(
        "organizations/<str:pk>/bidder/suspend",
        BidderSuspendApi.as_view(),
        name="organization-bidder-suspend",
    ),
    path("auctions/<str:pk>/applications", ApplicationsApi.as_view(), name="auction-applications"),
    path(
        "auctions/<str:pk>/applications/<str:bidder>/approve",
        ApplicationApproveApi.as_view(),
        name="auction-application-approve",
    ),
    path(
        "auctions/<str:pk>/applications/<str:bidder>/refuse",
        ApplicationRefuseApi.as_view(),
        name="auction-application-refuse",
    ),
    path(
        "auctions/<str:pk>/applications/<str:bidder>/withdraw",
        ApplicationWithdrawApi.as_view(),
        name="auction-application-withdraw",
    ),
    path("auctions/<str:pk>/deposits", DepositsApi.as_view(), name="auction-deposits"),
    path(
        "auctions/<str:pk>/deposits/<str:bidder>/release",
        DepositReleaseApi.as_view(),
        name="auction-deposit-release",
    ),
    path(
        "auctions/<str:pk>/deposits/<str:bidder>/forfeit",
        DepositForfeitApi.as_view(),
        name="auction-deposit-forfeit",
    ),
]
