"""Ascending auctions' bids (docs/auctions-ascending.md): ``/api/v1/auctions/{id}/raises``, an
English auction's open bids, and ``/api/v1/auctions/{id}/rounds`` and ``.../round-bids``, a clock
auction's rounds and round bids.

Anyone may read a raise (price, time, paddle: the bidder only once the auction's reveal named
it) and a round's published aggregate; a round bid's content only its bidder, until the end.
A bidder with the ``bid`` scope bids. Prices are decimal strings in the auction's currency, as
everywhere at this edge.
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

from . import clock, english, policy, selectors
from .models import Auction, ClockBid, ClockRound, Raise

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


# ---- clock auctions ------------------------------------------------------------------------


class RoundOutputSerializer(serializers.Serializer):
    round = serializers.IntegerField()
    price = serializers.CharField(help_text="per tonne")
    opens_at = serializers.CharField()
    closes_at = serializers.CharField()
    aggregate = serializers.IntegerField(
        allow_null=True, help_text="lots demanded at the round price; null while it runs"
    )
    active = serializers.IntegerField(allow_null=True, help_text="bidders demanding any lots")
    final = serializers.BooleanField(allow_null=True)
    bids = serializers.ListField(
        child=serializers.DictField(),
        allow_null=True,
        help_text="after the auction's reveal: every bid of the round (paddle, bidder, lots, "
        "exit_price); null before",
    )


def round_out(a: Auction, r: ClockRound, bids: list[ClockBid] | None) -> dict[str, Any]:
    return {
        "round": r.number,
        "price": format_money(r.price, a.currency),
        "opens_at": format_time(r.opens_at),
        "closes_at": format_time(r.closes_at),
        "aggregate": r.aggregate,
        "active": r.active,
        "final": r.final,
        "bids": None
        if bids is None
        else [
            {
                "paddle": b.paddle.pseudonym,
                "bidder": b.paddle.bidder_id,
                "lots": b.lots,
                "exit_price": None
                if b.exit_price is None
                else format_money(b.exit_price, a.currency),
            }
            for b in bids
        ],
    }


class RoundListApi(PublicApi):
    @extend_schema(
        operation_id="auctions_rounds_list",
        tags=["auctions"],
        parameters=ID_PARAM,
        responses=responses({200: RoundOutputSerializer(many=True)}, 400, 404),
    )
    def get(self, request: Request, pk: str) -> Response:
        """A clock auction's rounds: each one's price and times, and once it ended the
        aggregate demand, the active bidders and whether it was the final round; every bid
        once the auction ended (its reveal). None for other formats."""
        a = _auction(pk)
        revealed = a.revealed_seq is not None
        by_round: dict[int, list[ClockBid]] = {}
        if revealed:
            for b in ClockBid.objects.filter(auction=a).select_related("paddle").order_by("pk"):
                by_round.setdefault(b.round_id, []).append(b)
        return Response(
            [
                round_out(a, r, by_round.get(r.pk, []) if revealed else None)
                for r in ClockRound.objects.filter(auction=a).order_by("number")
            ]
        )


class RoundBidOutputSerializer(serializers.Serializer):
    bid = serializers.IntegerField()
    round = serializers.IntegerField()
    version = serializers.IntegerField()
    lots = serializers.IntegerField()
    exit_price = serializers.CharField(allow_null=True)
    commitment = serializers.CharField(help_text="as on the ledger (clock.bid)")
    entry_seq = serializers.IntegerField()


def round_bid_out(a: Auction, b: ClockBid) -> dict[str, Any]:
    return {
        "bid": b.pk,
        "round": b.round.number,
        "version": b.version,
        "lots": b.lots,
        "exit_price": None if b.exit_price is None else format_money(b.exit_price, a.currency),
        "commitment": b.commitment,
        "entry_seq": b.entry_seq,
    }


class RoundBidListApi(BaseApi):
    required_scope = "read"

    @extend_schema(
        operation_id="auctions_round_bids_mine",
        tags=["auctions"],
        parameters=ID_PARAM,
        responses=responses({200: RoundBidOutputSerializer(many=True)}, 400, 404),
    )
    def get(self, request: Request, pk: str) -> Response:
        """The caller's round bids in this clock auction, latest version of each round."""
        a = _auction(pk)
        rows = (
            policy.round_bids_visible_to(self.actor(request))
            .filter(auction=a)
            .select_related("round")
            .order_by("round__number")
        )
        return Response([round_bid_out(a, b) for b in rows])


class RoundBidCreateApi(BaseApi):
    required_scope = "bid"

    class InputSerializer(Body):
        lots = serializers.IntegerField(min_value=0, max_value=10**12)
        exit_price = pattern(
            _PRICE,
            required=False,
            allow_null=True,
            help_text="from round 2: where demand drops from the round before's to `lots`, "
            "strictly between the previous round's price and this one's",
        )
        account = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)

    @extend_schema(
        operation_id="auctions_round_bids_create",
        tags=["auctions"],
        request=InputSerializer,
        parameters=ID_PARAM,
        responses=responses({201: RoundBidOutputSerializer}, 400, 403, 404, 409, 422),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Bid in the current round of a clock auction: the lots demanded at the round price
        (never more than in the round before), optionally with an exit price. A second bid in
        the round replaces the first. Hidden from others until the auction ends; the operator
        sees it (sealing ``operator_rounds``)."""
        a = _auction(pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        exit_text = data.validated_data.get("exit_price")
        try:
            exit_price = (
                None
                if exit_text in (None, "")
                else parse_money(exit_text, a.currency, "exit_price")
            )
        except QuantityError as exc:
            raise serializers.ValidationError(
                {"exit_price": serializers.ErrorDetail(exc.message, code=exc.code)}
            ) from None

        def run() -> Response:
            b = clock.clock_bid(
                actor=self.actor(request),
                auction=a.pk,
                lots=data.validated_data["lots"],
                exit_price=exit_price,
                account=data.validated_data.get("account"),
            )
            return Response(round_bid_out(a, b), status=201)

        return self.idempotent(request, run)


RoundBidsApi = on_one_path("RoundBidsApi", RoundBidListApi, RoundBidCreateApi)

urlpatterns = [
    path("auctions/<str:pk>/raises", RaisesApi.as_view(), name="auction-raises"),
    path("auctions/<str:pk>/rounds", RoundListApi.as_view(), name="auction-rounds"),
    path("auctions/<str:pk>/round-bids", RoundBidsApi.as_view(), name="auction-round-bids"),
]
