"""``/api/v1/auctions/{id}/raises``: an English auction's open bids (docs/auctions-ascending.md).

Anyone may read them (price, time, paddle: the bidder only once the auction's reveal named it);
a bidder with the ``bid`` scope places one. Prices are decimal strings in the auction's
currency, as everywhere at this edge.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ledger.apis.base import (
    ID_PARAM,
    MAX_ID,
    BaseApi,
    Body,
    PublicApi,
    decimal_regex,
    on_one_path,
    path_id,
    pattern,
    query,
    responses,
)
from ledger.core.entry import format_time
from ledger.core.quantity import QuantityError, format_money, parse_money
from ledger.exceptions import NotFound

from . import english, selectors
from .models import Auction, Raise

_PRICE = decimal_regex(2, 13, zero=True)


def _auction(pk: str) -> Auction:
    a = selectors.auction_get(path_id(pk, "auction"))
    if a is None:
        raise NotFound(f"auction {pk} not found")
    return a


class RaiseOutputSerializer(serializers.Serializer):
    bid = serializers.IntegerField()
    paddle = serializers.CharField(help_text="the bidder's pseudonym in this auction (64 hex)")
    bidder = serializers.IntegerField(
        allow_null=True, help_text="null until the auction's reveal, at the end"
    )
    price = serializers.CharField(help_text="per tonne, in the auction's currency")
    time = serializers.CharField(help_text="the entry's time (UTC): when the bid was accepted")
    entry_seq = serializers.IntegerField()
    ends_at = serializers.CharField(help_text="when bidding ended after this bid, then")


def raise_out(a: Auction, r: Raise) -> dict[str, Any]:
    """A bid as the public sees it (the bidder once revealed)."""
    revealed = a.revealed_seq is not None
    return {
        "bid": r.pk,
        "paddle": r.paddle.pseudonym,
        "bidder": r.paddle.bidder_id if revealed else None,
        "price": format_money(r.price, a.currency),
        "time": format_time(r.time),
        "entry_seq": r.entry_seq,
        "ends_at": format_time(english.rules(a).deadline(r.time)),
    }


class RaiseListApi(PublicApi):
    class FilterSerializer(serializers.Serializer):
        after = serializers.IntegerField(
            required=False, min_value=0, help_text="only bids with a later entry_seq"
        )

    @extend_schema(
        operation_id="auctions_raises_list",
        tags=["auctions"],
        parameters=[ID_PARAM[0], FilterSerializer],
        responses=responses({200: RaiseOutputSerializer(many=True)}, 400, 404),
    )
    def get(self, request: Request, pk: str) -> Response:
        """An English auction's accepted bids in ledger order (``?after=<entry_seq>``: the ones
        since, for a page that follows the auction live); none for a sealed auction."""
        a = _auction(pk)
        params = query(self.FilterSerializer, request)
        rows = selectors.raises(a)
        if "after" in params:
            rows = rows.filter(entry_seq__gt=params["after"])
        return Response([raise_out(a, r) for r in rows])


class RaiseCreateApi(BaseApi):
    required_scope = "bid"

    class InputSerializer(Body):
        price = pattern(_PRICE, help_text="per tonne, e.g. 106.00")
        account = serializers.IntegerField(
            min_value=1,
            max_value=MAX_ID,
            required=False,
            help_text="where the lot is delivered if this bidder wins; fixed by its first bid",
        )

    @extend_schema(
        operation_id="auctions_raises_create",
        tags=["auctions"],
        request=InputSerializer,
        parameters=ID_PARAM,
        responses=responses({201: RaiseOutputSerializer}, 400, 403, 404, 409, 422),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Bid in an English auction: at least the start price, then at least the standing
        price plus the increment of its band, while bidding is open. In the timed phase it
        restarts the countdown."""
        a = _auction(pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            price = parse_money(data.validated_data["price"], a.currency, "price")
        except QuantityError as exc:
            raise serializers.ValidationError(
                {"price": serializers.ErrorDetail(exc.message, code=exc.code)}
            ) from None

        def run() -> Response:
            r = english.english_bid(
                actor=self.actor(request),
                auction=a.pk,
                price=price,
                account=data.validated_data.get("account"),
            )
            return Response(raise_out(a, r), status=201)

        return self.idempotent(request, run)


RaisesApi = on_one_path("RaisesApi", RaiseListApi, RaiseCreateApi)

urlpatterns = [path("auctions/<str:pk>/raises", RaisesApi.as_view(), name="auction-raises")]
