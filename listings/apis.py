"""``/api/v1/listings`` and ``/api/v1/purchases``: the listing board (docs/listings.md §4).

Listings are public, as an exchange's board is; a seller lists and withdraws with a key of
scope ``auction`` (selling on the exchange), a buyer takes lots with scope ``bid`` (buying on
it), and an operator confirms payments and declares defaults with scope ``onboard`` (the
operator's money desk: deposits are recorded with it too). Amounts at this edge are decimal
strings: tonnes with at most three decimals, prices and money with the currency's decimals.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ledger.actors import Actor
from ledger.apis.base import (
    ID_PARAM,
    MAX_ID,
    BaseApi,
    Body,
    ListApi,
    PageSerializer,
    PublicApi,
    RetrieveApi,
    TonnesField,
    decimal_regex,
    list_schema,
    on_one_path,
    page,
    page_of,
    path_id,
    pattern,
    query,
    responses,
    retrieve_schema,
)
from ledger.core.quantity import (
    CURRENCY_EXPONENTS,
    MAX_KG,
    QuantityError,
    format_money,
    format_tonnes,
    parse_money,
)
from ledger.exceptions import NotFound

from . import selectors, services
from .exceptions import InvalidInput
from .exceptions import ListingErrorCode as Code
from .models import Listing, Purchase

_MONEY_ABOVE_ZERO = decimal_regex(2, 13, zero=False)
_MONEY_OUT = {
    "type": "string",
    "pattern": r"^(0|[1-9][0-9]*)(\.[0-9]{2})?$",
    "example": "106.00",
    "description": "in the listing's currency, with its decimals (JPY none, the others 2)",
}


# ---- output ------------------------------------------------------------------------------


class ListedProjectSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    ecosystem = serializers.CharField()


class ListedBatchSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    serial = serializers.CharField()
    vintage = serializers.IntegerField()
    project = ListedProjectSerializer()


class ListingOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.CharField(
        help_text="open (listed: takes accepted from opens_at until closes_at), withdrawn, "
        "closed (expired)"
    )
    seller = serializers.IntegerField(source="seller_id")
    account = serializers.IntegerField(source="account_id")
    batch = ListedBatchSerializer()
    hold = serializers.IntegerField(source="hold_id", help_text="the escrow hold of the lots")
    quantity = TonnesField(help_text="listed, tonnes")
    lot_size = TonnesField(source="lot_kg", help_text="tonnes per lot")
    lots = serializers.IntegerField(help_text="lots listed")
    remaining_lots = serializers.IntegerField(help_text="lots not taken; 0 once ended")
    currency = serializers.CharField()
    price = serializers.SerializerMethodField(help_text="per tonne")
    lot_price = serializers.SerializerMethodField(help_text="the price of one lot")
    min_lots = serializers.IntegerField(help_text="the smallest take, but for the last lots")
    max_lots_per_buyer = serializers.IntegerField(allow_null=True)
    opens_at = serializers.DateTimeField()
    closes_at = serializers.DateTimeField()
    seconds_to_close = serializers.SerializerMethodField(help_text="0 once closed")
    created_seq = serializers.IntegerField()
    state_seq = serializers.IntegerField()

    @extend_schema_field(_MONEY_OUT)
    def get_price(self, x: Listing) -> str:
        return format_money(x.price, x.currency)

    @extend_schema_field(_MONEY_OUT)
    def get_lot_price(self, x: Listing) -> str:
        return format_money(x.price * x.lot_kg // 1000, x.currency)

    def get_seconds_to_close(self, x: Listing) -> int:
        if x.state != Listing.State.OPEN:
            return 0
        return max(0, int((x.closes_at - timezone.now()).total_seconds()))


class PurchaseOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    listing = serializers.IntegerField(source="listing_id")
    buyer = serializers.IntegerField(source="buyer_id")
    account = serializers.IntegerField(source="account_id", help_text="delivered to")
    lots = serializers.IntegerField()
    quantity = TonnesField(help_text="tonnes")
    currency = serializers.CharField(source="listing.currency")
    amount_due = serializers.SerializerMethodField()
    state = serializers.CharField(help_text="pending (awaiting payment), delivered, defaulted")
    entry_seq = serializers.IntegerField(help_text="the listing.take entry")
    resolved_seq = serializers.IntegerField(allow_null=True)

    @extend_schema_field(_MONEY_OUT)
    def get_amount_due(self, p: Purchase) -> str:
        return format_money(p.amount_due, p.listing.currency)


def _listing_out(pk: int) -> dict[str, Any]:
    return ListingOutputSerializer(selectors.listing_get(pk)).data


def _purchase_out(p: Purchase) -> dict[str, Any]:
    return PurchaseOutputSerializer(selectors.purchase_get(p.pk)).data


# ---- listings ----------------------------------------------------------------------------


class ListingListApi(PublicApi):
    class FilterSerializer(PageSerializer):
        state = serializers.ChoiceField(choices=Listing.State.values, required=False)
        seller = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
        batch = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)

    @list_schema(
        "listings_list",
        "listings",
        FilterSerializer,
        page_of("ListingPage", ListingOutputSerializer),
    )
    def get(self, request: Request) -> Response:
        """Listings, oldest first, with their terms and what remains (public: anyone may read
        the board)."""
        params = query(self.FilterSerializer, request)
        filters = {k: params[k] for k in ("state", "seller", "batch") if k in params}
        return page(selectors.listing_list(**filters), params, ListingOutputSerializer)


class ListingCreateApi(BaseApi):
    required_scope = "auction"

    class InputSerializer(Body):
        account = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        batch = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        quantity = TonnesField(help_text="tonnes listed: a whole number of lots")
        lot_size = TonnesField(help_text="tonnes per lot")
        currency = serializers.ChoiceField(choices=sorted(CURRENCY_EXPONENTS))
        price = pattern(
            _MONEY_ABOVE_ZERO,
            help_text="per tonne, more than 0, at most the currency's decimals, e.g. 106.00",
        )
        opens_at = serializers.DateTimeField(
            required=False, help_text="when takes are accepted from (default: now)"
        )
        closes_at = serializers.DateTimeField(help_text="the unsold lots return to the seller")
        min_lots = serializers.IntegerField(
            min_value=1, max_value=MAX_KG, default=1, help_text="the smallest take"
        )
        max_lots_per_buyer = serializers.IntegerField(
            min_value=1, max_value=MAX_KG, required=False, allow_null=True
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            out = dict(attrs)
            try:
                out["price"] = parse_money(out["price"], out["currency"], "price")
            except QuantityError as exc:
                raise serializers.ValidationError(
                    {"price": serializers.ErrorDetail(exc.message, code=exc.code)}
                ) from None
            return out

    @extend_schema(
        operation_id="listings_create",
        tags=["listings"],
        request=InputSerializer,
        responses=responses({201: ListingOutputSerializer}, 400, 404, 409, 422),
    )
    def post(self, request: Request) -> Response:
        """List whole lots from one of the caller's holding accounts at a fixed price: the
        lots go into escrow at once and are sold to whoever takes them first."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        quantity, lot_kg = v.pop("quantity"), v.pop("lot_size")
        if quantity % lot_kg:
            raise InvalidInput(
                f"{format_tonnes(quantity)} t is not a whole number of "
                f"{format_tonnes(lot_kg)} t lots",
                code=Code.INVALID_TERMS,
                detail={"lot_size": "not_a_divisor"},
            )
        v.setdefault("opens_at", timezone.now())

        def run() -> Response:
            x = services.listing_create(
                actor=self.actor(request), lots=quantity // lot_kg, lot_kg=lot_kg, **v
            )
            return Response(_listing_out(x.pk), status=201)

        return self.idempotent(request, run)


ListingsApi = on_one_path("ListingsApi", ListingListApi, ListingCreateApi)


class ListingRetrieveApi(PublicApi):
    @retrieve_schema("listings_retrieve", "listings", ListingOutputSerializer)
    def get(self, request: Request, pk: str) -> Response:
        """A listing: its batch, terms, state and the lots that remain."""
        x = selectors.listing_get(path_id(pk, "listing"))
        if x is None:
            raise NotFound(f"listing {pk} not found")
        return Response(ListingOutputSerializer(x).data)


class ListingTakeApi(BaseApi):
    required_scope = "bid"

    class InputSerializer(Body):
        lots = serializers.IntegerField(min_value=1, max_value=MAX_KG)
        up_to = serializers.BooleanField(
            default=False,
            help_text="false: all the lots or none (409 listing_insufficient_lots); true: as "
            "many as the caller may take, up to `lots`",
        )
        account = serializers.IntegerField(
            min_value=1,
            max_value=MAX_ID,
            required=False,
            help_text="the holding account the lots are delivered to (default: the first)",
        )

    @extend_schema(
        operation_id="listings_take",
        tags=["listings"],
        request=InputSerializer,
        parameters=ID_PARAM,
        responses=responses({201: PurchaseOutputSerializer}, 400, 403, 404, 409, 422),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Take whole lots (摘牌), first come by ledger order: a pending purchase, delivered
        once the operator confirms the payment of its amount due."""
        listing_id = path_id(pk, "listing")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            p = services.listing_take(
                actor=self.actor(request), listing=listing_id, **data.validated_data
            )
            return Response(_purchase_out(p), status=201)

        return self.idempotent(request, run)


class ListingWithdrawApi(BaseApi):
    required_scope = "auction"

    class InputSerializer(Body):
        reason = serializers.CharField(max_length=200, required=False)

    @extend_schema(
        operation_id="listings_withdraw",
        tags=["listings"],
        request=InputSerializer,
        parameters=ID_PARAM,
        responses=responses({200: ListingOutputSerializer}, 400, 404, 409),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Withdraw the unsold lots (撤牌): they return to the seller's account and the listing
        ends. Pending purchases stand."""
        listing_id = path_id(pk, "listing")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            services.listing_withdraw(
                actor=self.actor(request),
                listing=listing_id,
                reason=data.validated_data.get("reason"),
            )
            return Response(_listing_out(listing_id))

        return self.idempotent(request, run)


# ---- purchases ---------------------------------------------------------------------------


class PurchaseListApi(ListApi):
    class FilterSerializer(PageSerializer):
        listing = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
        state = serializers.ChoiceField(choices=Purchase.State.values, required=False)

    output = PurchaseOutputSerializer

    def rows(self, actor: Actor, params: dict[str, Any]) -> QuerySet[Purchase]:
        qs = selectors.purchase_list(actor=actor)
        if "listing" in params:
            qs = qs.filter(listing_id=params["listing"])
        if "state" in params:
            qs = qs.filter(state=params["state"])
        return qs

    @list_schema(
        "purchases_list",
        "listings",
        FilterSerializer,
        page_of("PurchasePage", PurchaseOutputSerializer),
    )
    def get(self, request: Request) -> Response:
        """Purchases the caller may see: a buyer its own, a seller those of its listings, an
        operator every one."""
        return self.paged(request)


class PurchaseRetrieveApi(RetrieveApi):
    what = "purchase"
    output = PurchaseOutputSerializer

    def rows(self, actor: Actor) -> QuerySet[Purchase]:
        return selectors.purchase_list(actor=actor)

    @retrieve_schema("purchases_retrieve", "listings", PurchaseOutputSerializer)
    def get(self, request: Request, pk: str) -> Response:
        """One purchase the caller may see."""
        return self.one(request, pk)


class PurchaseConfirmApi(BaseApi):
    required_scope = "onboard"

    @extend_schema(
        operation_id="purchases_confirm",
        tags=["listings"],
        request=None,
        parameters=ID_PARAM,
        responses=responses({200: PurchaseOutputSerializer}, 403, 404, 409),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Operators: the buyer's payment arrived. The listing's escrow delivers the lots to
        the buyer's account (delivery versus payment)."""
        purchase_id = path_id(pk, "purchase")

        def run() -> Response:
            p = services.purchase_confirm(actor=self.actor(request), purchase=purchase_id)
            return Response(_purchase_out(p))

        return self.idempotent(request, run)


class PurchaseDefaultApi(BaseApi):
    required_scope = "onboard"

    class InputSerializer(Body):
        reason = serializers.CharField(max_length=200, required=False)

    @extend_schema(
        operation_id="purchases_default",
        tags=["listings"],
        request=InputSerializer,
        parameters=ID_PARAM,
        responses=responses({200: PurchaseOutputSerializer}, 400, 403, 404, 409),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Operators: the buyer did not pay. Its lots return to the listing while it is listed
        (others may take them), else to the seller."""
        purchase_id = path_id(pk, "purchase")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            p = services.purchase_default(
                actor=self.actor(request),
                purchase=purchase_id,
                reason=data.validated_data.get("reason"),
            )
            return Response(_purchase_out(p))

        return self.idempotent(request, run)


urlpatterns = [
    path("listings", ListingsApi.as_view(), name="listings"),
    path("listings/<str:pk>", ListingRetrieveApi.as_view(), name="listing"),
    path("listings/<str:pk>/take", ListingTakeApi.as_view(), name="listing-take"),
    path("listings/<str:pk>/withdraw", ListingWithdrawApi.as_view(), name="listing-withdraw"),
    path("purchases", PurchaseListApi.as_view(), name="purchases"),
    path("purchases/<str:pk>", PurchaseRetrieveApi.as_view(), name="purchase"),
    path("purchases/<str:pk>/confirm", PurchaseConfirmApi.as_view(), name="purchase-confirm"),
    path("purchases/<str:pk>/default", PurchaseDefaultApi.as_view(), name="purchase-default"),
]
