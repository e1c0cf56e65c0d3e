"""``/api/v1/auctions``: create and schedule auctions, read them (public, like the notices and
results the large programmes publish), seal and amend bids, and read results.

Amounts at this edge are decimal strings: tonnes with at most three decimals, prices per tonne
and money with the currency's decimals (CNY: two). The server never receives a bid's content:
a bid is an HPKE ciphertext (``docs/auctions.md`` says how to make one; ``auctions.core.sealing``
and the portal's ``seal.js`` are two clients).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
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
    PublicApi,
    TonnesField,
    decimal_regex,
    on_one_path,
    page_of,
    page_rows,
    path_id,
    pattern,
    query,
    responses,
)
from ledger.apis.log import TextApi
from ledger.core.quantity import (
    CURRENCY_EXPONENTS,
    QuantityError,
    format_money,
    format_share,
    parse_money,
    parse_share,
)
from ledger.exceptions import NotFound

from . import policy, receipts, records, selectors, services, trustees
from .core import sealing
from .models import (
    MAX_TRUSTEES,
    Auction,
    Bid,
    BidReceipt,
    Format,
    Sealing,
    TieRule,
    Undersubscribed,
)

State = Auction.State

_MONEY = decimal_regex(2, 13, zero=True)  # below MAX_MINOR (10^15 minor units)
_MONEY_ABOVE_ZERO = decimal_regex(2, 13, zero=False)
_PERCENT_ABOVE_ZERO = r"100(\.0{1,2})?|[1-9][0-9]?(\.[0-9]{1,2})?|0\.([1-9][0-9]?|0[1-9])"


def _money(auction: Auction, minor: int | None) -> str | None:
    return None if minor is None else format_money(minor, auction.currency)


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^(0|[1-9][0-9]*)(\.[0-9]{2})?$",
        "example": "106.00",
        "nullable": True,
        "description": "in the auction's currency, with its decimals (JPY none, the others 2)",
    }
)
class MoneyField(serializers.Field):
    """Minor units -> a decimal string in the auction's currency."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def get_attribute(self, instance: Any) -> Any:
        return (instance, super().get_attribute(instance))

    def to_representation(self, value: Any) -> str | None:
        auction, minor = value
        return _money(auction, minor)


# ---- output ------------------------------------------------------------------------------


class ProjectSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    ecosystem = serializers.CharField()
    storage_pathway = serializers.CharField()
    methodology = serializers.CharField(source="methodology.code")
    jurisdiction = serializers.CharField()
    validation_body = serializers.CharField()


class BatchSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    serial = serializers.CharField()
    vintage = serializers.IntegerField()
    monitoring_start = serializers.DateField()
    monitoring_end = serializers.DateField()
    verification_body = serializers.CharField()
    verification_report_sha256 = serializers.CharField()
    project = ProjectSummarySerializer()


class TrusteeKeySerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="1 to n: the order of the share boxes")
    trustee = serializers.IntegerField(help_text="the trustee organization")
    key = serializers.IntegerField(help_text="the trustee key's id")
    public_key = serializers.CharField(help_text="base64 of the raw X25519 public key")
    released = serializers.BooleanField(help_text="whether the trustee released its key")


class SealingSerializer(serializers.Serializer):
    """How to seal a bid for this auction (docs/auctions.md §3)."""

    mode = serializers.ChoiceField(
        choices=Sealing.values,
        help_text="trustees: any `threshold` of the trustees open the bids after the close, "
        "fewer cannot; operator_key: the operator holds the key and can read bids before the "
        "close",
    )
    suite = serializers.CharField()
    origin = serializers.CharField()
    info_prefix = serializers.CharField(
        help_text="the HPKE info of the bid body is these exact bytes (UTF-8; the newlines are "
        "newline characters) followed by the bidder's organization id in decimal"
    )
    share_info_prefix = serializers.CharField(
        allow_null=True,
        help_text="trustees: share box i's HPKE info is these bytes, the bidder's id in decimal, "
        "a newline and i in decimal",
    )
    public_key = serializers.CharField(
        allow_null=True, help_text="operator_key: base64 of the raw X25519 public key"
    )
    threshold = serializers.IntegerField(allow_null=True)
    trustees = TrusteeKeySerializer(many=True, help_text="trustees: their keys, in order")
    release_by = serializers.DateTimeField(allow_null=True)


class IncrementSerializer(serializers.Serializer):
    """One price band of an English auction's increments."""

    from_ = pattern(_MONEY, help_text="per tonne: the band starts at this standing price")
    step = pattern(_MONEY_ABOVE_ZERO, help_text="per tonne: the minimum raise in the band")

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        fields["from"].source = "from_"
        return fields


class EnglishSerializer(serializers.Serializer):
    """An English auction's rules and its bidding so far (docs/auctions-ascending.md)."""

    start_price = serializers.CharField()
    increments = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))
    countdown_seconds = serializers.IntegerField()
    hard_close_at = serializers.DateTimeField(allow_null=True)
    standing_price = serializers.CharField(allow_null=True)
    minimum_bid = serializers.CharField(
        allow_null=True, help_text="the lowest valid bid now; null once bidding ended"
    )
    ends_at = serializers.DateTimeField(
        allow_null=True, help_text="when bidding ends now: each bid in the timed phase moves it"
    )


class ClockSerializer(serializers.Serializer):
    """A clock auction's rules and current round (docs/auctions-ascending.md §6)."""

    start_price = serializers.CharField()
    increments = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))
    round_seconds = serializers.IntegerField()
    round = serializers.IntegerField(allow_null=True)
    round_price = serializers.CharField(allow_null=True)
    round_closes_at = serializers.DateTimeField(allow_null=True)
    round_open = serializers.BooleanField()


class AuctionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    state = serializers.CharField()
    seller = serializers.IntegerField(source="seller_id")
    account = serializers.IntegerField(source="account_id")
    batch = BatchSummarySerializer()
    format = serializers.CharField()
    quantity = TonnesField(help_text="offered, tonnes")
    lot_size = TonnesField(source="lot_kg", help_text="tonnes per lot")
    offered_lots = serializers.IntegerField()
    currency = serializers.CharField()
    price_tick = MoneyField(source="tick", help_text="per tonne")
    reserve_price = MoneyField(source="reserve", help_text="per tonne")
    bidder_cap = serializers.SerializerMethodField(help_text="percent of the offering, or null")
    deposit_required = MoneyField()
    bid_guarantee = serializers.BooleanField()
    tie_rule = serializers.CharField()
    undersubscribed = serializers.CharField()
    opens_at = serializers.DateTimeField()
    closes_at = serializers.DateTimeField()
    seconds_to_close = serializers.SerializerMethodField(help_text="0 once closed")
    sealing = serializers.SerializerMethodField()
    bids_counted = serializers.IntegerField(source="book_size", allow_null=True)
    book_root = serializers.SerializerMethodField(help_text="hex, once bidding closed")
    clearing_price = MoneyField()
    result_sha256 = serializers.CharField()
    private_key = serializers.SerializerMethodField(
        help_text="base64; published with the result, null before"
    )
    state_reason = serializers.CharField()
    rules_version = serializers.IntegerField(
        help_text="the rules' version (the ledger record's `v`): which computation the result "
        "is made and verified by (docs/auctions.md §5)"
    )
    english = serializers.SerializerMethodField()
    clock = serializers.SerializerMethodField()

    @extend_schema_field(ClockSerializer(allow_null=True))
    def get_clock(self, a: Auction) -> dict[str, Any] | None:
        """null for the other formats."""
        return selectors.clock_state(a)

    @extend_schema_field(EnglishSerializer(allow_null=True))
    def get_english(self, a: Auction) -> dict[str, Any] | None:
        """null for the sealed formats."""
        return selectors.english_state(a)

    def get_bidder_cap(self, a: Auction) -> str | None:
        return None if a.cap_bp is None else format_share(a.cap_bp)

    def get_seconds_to_close(self, a: Auction) -> int:
        if a.state not in (State.SCHEDULED, State.OPEN):
            return 0
        return max(0, int((a.bidding_ends_at - timezone.now()).total_seconds()))

    @extend_schema_field(SealingSerializer(allow_null=True))
    def get_sealing(self, a: Auction) -> dict[str, Any] | None:
        """null while a draft: the keys are fixed when the auction is scheduled."""
        return selectors.auction_sealing(a)

    def get_book_root(self, a: Auction) -> str | None:
        return None if a.book_root is None else bytes(a.book_root).hex()

    def get_private_key(self, a: Auction) -> str | None:
        # Only the published key (written by the clear step); the sealed one never leaves.
        return records.b64(a.private_key) if a.private_key is not None else None


class ReceiptSerializer(serializers.Serializer):
    bid = serializers.IntegerField(source="bid_id")
    version = serializers.IntegerField()
    action = serializers.CharField()
    commitment = serializers.CharField(help_text="hex SHA-256 of the ciphertext")
    entry_seq = serializers.IntegerField()
    time = serializers.CharField(help_text="the entry's time (UTC)")
    note = serializers.SerializerMethodField(
        help_text="the receipt, a C2SP signed note by the receipt key "
        "(GET /api/v1/auctions/receipts/verifier-keys)"
    )

    def get_note(self, r: BidReceipt) -> str:
        return services.receipt_note(r, r.bid.auction_id, r.bid.bidder_id)


class BidOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    auction = serializers.IntegerField(source="auction_id")
    bidder = serializers.IntegerField(source="bidder_id")
    account = serializers.IntegerField(source="account_id")
    version = serializers.IntegerField()
    status = serializers.CharField()
    reason = serializers.CharField()
    commitment = serializers.CharField()
    entry_seq = serializers.IntegerField()
    awarded_lots = serializers.IntegerField(allow_null=True)
    receipts = ReceiptSerializer(many=True)


class BookItemSerializer(serializers.Serializer):
    bid = serializers.IntegerField(source="pk")
    bidder = serializers.SerializerMethodField(
        help_text="null until the auction's reveal (at the close): before it, the ledger names "
        "a bid only by its pseudonym"
    )
    version = serializers.IntegerField()
    status = serializers.CharField()
    commitment = serializers.CharField()
    entry_seq = serializers.IntegerField()

    def get_bidder(self, b: Bid) -> int | None:
        return records.public_bidder(b, b.auction)


# ---- auctions ----------------------------------------------------------------------------


class AuctionListApi(PublicApi):
    class FilterSerializer(PageSerializer):
        state = serializers.ChoiceField(choices=State.values, required=False)
        format = serializers.ChoiceField(choices=Format.values, required=False)
        ecosystem = serializers.CharField(required=False, max_length=16)
        vintage = serializers.IntegerField(required=False, min_value=1990, max_value=2200)
        seller = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)

    @extend_schema(
        operation_id="auctions_list",
        tags=["auctions"],
        parameters=[FilterSerializer],
        responses=responses({200: page_of("AuctionPage", AuctionOutputSerializer)}, 400),
    )
    def get(self, request: Request) -> Response:
        """Auctions, newest last, with their rules (public: anyone may read them)."""
        params = query(self.FilterSerializer, request)
        rows, next_after = page_rows(selectors.auction_list(**_filters(params)), params)
        rows = selectors.with_current_rounds(list(rows))
        return Response(
            {"results": AuctionOutputSerializer(rows, many=True).data, "next_after": next_after}
        )


def _filters(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: params[k] for k in ("state", "format", "ecosystem", "vintage", "seller") if k in params
    }


class AuctionCreateApi(BaseApi):
    required_scope = "auction"

    class InputSerializer(Body):
        title = serializers.CharField(max_length=200)
        account = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        batch = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        format = serializers.ChoiceField(choices=Format.values)
        quantity = TonnesField()
        lot_size = TonnesField(help_text="tonnes per lot; single-lot formats: the quantity")
        currency = serializers.ChoiceField(choices=sorted(CURRENCY_EXPONENTS))
        # Money in the currency's minor units, at most its decimals (JPY none, the others 2):
        # the pattern allows 2, and parse_money refuses what the currency does not have.
        price_tick = pattern(_MONEY_ABOVE_ZERO, help_text="per tonne, more than 0, e.g. 1.00")
        reserve_price = pattern(_MONEY, help_text="per tonne, e.g. 30.00")
        bidder_cap = pattern(
            _PERCENT_ABOVE_ZERO,
            required=False,
            allow_null=True,
            help_text="percent of the offering, more than 0 and at most 100, e.g. 25",
        )
        deposit_required = pattern(_MONEY, default="0", help_text="e.g. 30000.00")
        bid_guarantee = serializers.BooleanField(default=False)
        tie_rule = serializers.ChoiceField(choices=TieRule.values)
        undersubscribed = serializers.ChoiceField(choices=Undersubscribed.values)
        opens_at = serializers.DateTimeField()
        closes_at = serializers.DateTimeField()
        sealing = serializers.ChoiceField(
            choices=Sealing.values,
            default=Sealing.OPERATOR_KEY,
            help_text="who opens the bids: trustees (any `threshold` of `trustees`) or "
            "operator_key (a key the operator holds: it can read bids before the close)",
        )
        trustees = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
            required=False,
            max_length=MAX_TRUSTEES,
            help_text="trustees: the trustee organizations, in the order bids seal to them",
        )
        threshold = serializers.IntegerField(
            required=False, min_value=1, max_value=MAX_TRUSTEES, help_text="trustees: k of n"
        )
        release_by = serializers.DateTimeField(
            required=False,
            help_text="trustees: the deadline for their keys, after the closing time; with "
            "fewer than `threshold` released by then, the auction fails",
        )
        # English auctions (docs/auctions-ascending.md): reserve_price is the start price,
        # closes_at the end of the free phase.
        increments = IncrementSerializer(
            many=True,
            required=False,
            help_text="english: the minimum raise by price band, `from` ascending from 0.00",
        )
        countdown_seconds = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=86_400,
            help_text="english: the countdown every bid in the timed phase restarts",
        )
        hard_close_at = serializers.DateTimeField(
            required=False,
            help_text="english: an end no bid moves (after closes_at); none if absent",
        )
        round_seconds = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=86_400,
            help_text="clock: each round after the first (which ends at closes_at) lasts this",
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            currency = attrs["currency"]
            out = dict(attrs)
            if attrs["format"] == Format.ENGLISH and out["sealing"] == Sealing.OPERATOR_KEY:
                out["sealing"] = Sealing.OPEN  # the default: an English auction is not sealed
            if attrs["format"] == Format.CLOCK and out["sealing"] == Sealing.OPERATOR_KEY:
                out["sealing"] = Sealing.OPERATOR_ROUNDS  # its only sealing
            if "round_seconds" in out:
                out["round_s"] = out.pop("round_seconds")
            if "countdown_seconds" in out:
                out["countdown_s"] = out.pop("countdown_seconds")
            out["sealing_mode"] = out.pop("sealing")
            out["trustee_ids"] = out.pop("trustees", None)
            errors = {}
            for field, target in (
                ("price_tick", "tick"),
                ("reserve_price", "reserve"),
                ("deposit_required", "deposit_required"),
            ):
                try:
                    out[target] = parse_money(out.pop(field), currency, field)
                except QuantityError as exc:
                    errors[field] = serializers.ErrorDetail(exc.message, code=exc.code)
            cap = out.pop("bidder_cap", None)
            try:
                out["cap_bp"] = None if cap in (None, "") else parse_share(cap)
            except QuantityError as exc:
                errors["bidder_cap"] = serializers.ErrorDetail(exc.message, code=exc.code)
            if "increments" in out:
                try:
                    out["increments"] = [
                        [
                            parse_money(b["from_"], currency, "from"),
                            parse_money(b["step"], currency, "step"),
                        ]
                        for b in out["increments"]
                    ]
                except QuantityError as exc:
                    errors["increments"] = serializers.ErrorDetail(exc.message, code=exc.code)
            if errors:
                raise serializers.ValidationError(errors)
            out["lot_kg"] = out.pop("lot_size")
            return out

    @extend_schema(
        operation_id="auctions_create",
        tags=["auctions"],
        request=InputSerializer,
        responses=responses({201: AuctionOutputSerializer}, 400, 404, 409, 422),
    )
    def post(self, request: Request) -> Response:
        """A draft auction of credits from one of the caller's holding accounts. Nothing moves
        until it is scheduled."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            a = services.auction_create(actor=self.actor(request), **data.validated_data)
            return Response(AuctionOutputSerializer(selectors.auction_get(a.pk)).data, status=201)

        return self.idempotent(request, run)


AuctionsApi = on_one_path("AuctionsApi", AuctionListApi, AuctionCreateApi)


# ---- trustees --------------------------------------------------------------------------------


class TrusteeKeyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    organization = serializers.IntegerField(source="organization_id")
    public_key = serializers.CharField(source="public_key_b64")
    entry_seq = serializers.IntegerField()
    auction = serializers.IntegerField(source="auction_id", allow_null=True)
    position = serializers.IntegerField(allow_null=True)
    released_seq = serializers.IntegerField(allow_null=True)


class TrusteeKeyListApi(BaseApi):
    required_scope = "trustee"

    @extend_schema(
        operation_id="trustee_keys_list",
        tags=["trustees"],
        parameters=[PageSerializer],
        responses=responses({200: page_of("TrusteeKeyPage", TrusteeKeyOutputSerializer)}, 400),
    )
    def get(self, request: Request) -> Response:
        """The caller's trustee keys: unused (no auction), assigned, released."""
        params = query(PageSerializer, request)
        keys = policy.trustee_keys_visible_to(self.actor(request))
        rows, next_after = page_rows(keys.order_by("pk"), params)
        return Response(
            {"results": TrusteeKeyOutputSerializer(rows, many=True).data, "next_after": next_after}
        )


class TrusteeKeyRegisterApi(BaseApi):
    required_scope = "trustee"

    class InputSerializer(Body):
        public_keys = serializers.ListField(
            child=serializers.CharField(max_length=44, trim_whitespace=False),
            min_length=1,
            max_length=trustees.MAX_KEYS_PER_CALL,
            help_text="base64 of raw X25519 public keys made on the trustee's own machine",
        )

    @extend_schema(
        operation_id="trustee_keys_register",
        tags=["trustees"],
        request=InputSerializer,
        responses=responses({201: TrusteeKeyOutputSerializer(many=True)}, 400, 403, 409),
    )
    def post(self, request: Request) -> Response:
        """Register one-time public keys of the caller's trustee organization. Each auction
        sealed to it takes its oldest unused key when scheduled."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            created = trustees.trustee_keys_register(
                actor=self.actor(request), public_keys=data.validated_data["public_keys"]
            )
            return Response(TrusteeKeyOutputSerializer(created, many=True).data, status=201)

        return self.idempotent(request, run)


TrusteeKeysApi = on_one_path("TrusteeKeysApi", TrusteeKeyListApi, TrusteeKeyRegisterApi)


class KeyReleaseApi(BaseApi):
    required_scope = "trustee"

    class InputSerializer(Body):
        private_key = serializers.CharField(
            max_length=44,
            trim_whitespace=False,
            help_text="base64 of the raw X25519 private key of the caller's key in this auction",
        )

    @extend_schema(
        operation_id="auctions_key_release",
        tags=["trustees"],
        request=InputSerializer,
        parameters=ID_PARAM,
        responses=responses({200: TrusteeKeyOutputSerializer}, 400, 403, 404, 409, 422),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Release the caller's trustee key for this auction, after the close. It must be the
        private half of the key registered for it; once the auction's threshold of trustees
        have released, its bids are opened, cleared and settled."""
        auction_id = path_id(pk, "auction")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            key = trustees.trustee_release(
                actor=self.actor(request),
                auction=auction_id,
                private_key=data.validated_data["private_key"],
            )
            return Response(TrusteeKeyOutputSerializer(key).data)

        return self.idempotent(request, run)


class AuctionRetrieveApi(PublicApi):
    @extend_schema(
        operation_id="auctions_retrieve",
        tags=["auctions"],
        parameters=ID_PARAM,
        responses=responses({200: AuctionOutputSerializer}, 404),
    )
    def get(self, request: Request, pk: str) -> Response:
        """An auction: project and batch, lot, rules, public key, state and countdown; after
        close the book root, after clearing the result's hash and the published key."""
        return Response(AuctionOutputSerializer(_auction(pk)).data)


def _auction(pk: str) -> Auction:
    a = selectors.auction_get(path_id(pk, "auction"))
    if a is None:
        raise NotFound(f"auction {pk} not found")
    return a


class AuctionScheduleApi(BaseApi):
    required_scope = "auction"

    @extend_schema(
        operation_id="auctions_schedule",
        tags=["auctions"],
        request=None,
        parameters=ID_PARAM,
        responses=responses({200: AuctionOutputSerializer}, 404, 409),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Fix the rules, put the lot in escrow and publish the HPKE public key. The auction
        opens at its opening time (at once if that has passed)."""
        auction_id = path_id(pk, "auction")

        def run() -> Response:
            services.auction_schedule(actor=self.actor(request), auction=auction_id)
            return Response(AuctionOutputSerializer(selectors.auction_get(auction_id)).data)

        return self.idempotent(request, run)


class AuctionCancelApi(BaseApi):
    required_scope = "auction"

    class InputSerializer(Body):
        reason = serializers.CharField(max_length=200)

    @extend_schema(
        operation_id="auctions_cancel",
        tags=["auctions"],
        request=InputSerializer,
        parameters=ID_PARAM,
        responses=responses({200: AuctionOutputSerializer}, 400, 403, 404, 409),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Withdraw an auction before it closes (the seller before it opens; an operator
        while open): the lot returns to the seller, deposits are released."""
        auction_id = path_id(pk, "auction")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            services.auction_cancel(
                actor=self.actor(request), auction=auction_id, reason=data.validated_data["reason"]
            )
            return Response(AuctionOutputSerializer(selectors.auction_get(auction_id)).data)

        return self.idempotent(request, run)


class AuctionResultApi(PublicApi):
    @extend_schema(
        operation_id="auctions_result",
        tags=["auctions"],
        parameters=ID_PARAM,
        responses=responses(
            {
                200: {
                    "type": "object",
                    "properties": {
                        "state": {"type": "string"},
                        "result_sha256": {"type": "string"},
                        "private_key": {"type": "string", "nullable": True},
                        "result": {
                            "type": "object",
                            "nullable": True,
                            "description": "as published by the auction.clear entry; see "
                            "docs/auctions.md. Null until the auction is cleared.",
                        },
                    },
                }
            },
            404,
        ),
    )
    def get(self, request: Request, pk: str) -> Response:
        """The published result: clearing price, awards, unsold lots, every opened bid with
        its outcome, statistics (bid-to-cover, HHI, price range) and the revealed key."""
        a = _auction(pk)
        return Response(
            {
                "state": a.state,
                "result_sha256": a.result_sha256,
                "private_key": records.b64(a.private_key) if a.private_key is not None else None,
                "result": selectors.auction_result(a),
            }
        )


class AuctionBookApi(PublicApi):
    @extend_schema(
        operation_id="auctions_book",
        tags=["auctions"],
        parameters=[ID_PARAM[0], PageSerializer],
        responses=responses({200: page_of("BookPage", BookItemSerializer)}, 400, 404),
    )
    def get(self, request: Request, pk: str) -> Response:
        """The bids' commitments (their ciphertexts' SHA-256), as on the ledger: what the close
        commits to. Never a bid's content."""
        a = _auction(pk)
        params = query(PageSerializer, request)
        rows, next_after = page_rows(
            Bid.objects.filter(auction=a).select_related("auction"), params
        )
        return Response(
            {"results": BookItemSerializer(rows, many=True).data, "next_after": next_after}
        )


# ---- bids --------------------------------------------------------------------------------


# Standard base64 (OpenAPI's format "byte") of 49 to 5,392 bytes (sealing.MAX_ENVELOPE: 16
# share boxes and a body of at most 4,096), which the service checks against the auction's
# sealing (400 malformed_ciphertext). The maxLength, 7,188 characters, is the longest whole
# number of base64 groups not over 5,392 bytes (5,391).
_CIPHERTEXT_CHARS = 4 * (sealing.MAX_ENVELOPE // 3)


@extend_schema_field(
    {
        "type": "string",
        "format": "byte",
        "minLength": 68,
        "maxLength": _CIPHERTEXT_CHARS,
        "description": "standard base64 of the sealed bid: operator_key, enc || ciphertext; "
        "trustees, n share boxes and enc || ciphertext (docs/auctions.md §3)",
    }
)
class CiphertextField(serializers.CharField):
    """Taken as sent; the service decodes and checks it (its code: malformed_ciphertext)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=_CIPHERTEXT_CHARS, trim_whitespace=False, **kwargs)


class _BidInput(Body):
    ciphertext = CiphertextField()
    account = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, help_text="where awards are delivered"
    )


def _bid_out(receipt: BidReceipt) -> dict[str, Any]:
    return BidOutputSerializer(selectors.bid_get(receipt.bid_id)).data


def _new_bid_out(receipt: BidReceipt) -> dict[str, Any]:
    """A bid just submitted, as BidOutputSerializer shows it, from what is in hand: its one
    receipt is the one just made. Written out because this answers every bid (DRF copies a
    serializer's fields for each instance, about a millisecond here);
    tests/api/test_auctions.py holds it equal to the serializer's output."""
    bid = receipt.bid
    return {
        "id": bid.pk,
        "auction": bid.auction_id,
        "bidder": bid.bidder_id,
        "account": bid.account_id,
        "version": bid.version,
        "status": bid.status,
        "reason": bid.reason,
        "commitment": bid.commitment,
        "entry_seq": bid.entry_seq,
        "awarded_lots": bid.awarded_lots,
        "receipts": [
            {
                "bid": bid.pk,
                "version": receipt.version,
                "action": receipt.action,
                "commitment": receipt.commitment,
                "entry_seq": receipt.entry_seq,
                "time": receipt.time,
                # Signed after the commit (BidSubmitApi.post): not while holding the ledger head.
                "note": None,
            }
        ],
    }


class BidSubmitApi(BaseApi):
    required_scope = "bid"

    class InputSerializer(_BidInput):
        pass

    @extend_schema(
        operation_id="auctions_bids_create",
        tags=["auctions"],
        request=InputSerializer,
        parameters=ID_PARAM,
        responses=responses({201: BidOutputSerializer}, 400, 404, 409, 422),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Submit a sealed bid (a bidder may have several: together they are its demand). The
        answer carries the receipt: the bid, its version, the ciphertext's commitment and ledger
        sequence, signed with the receipt key (``GET /api/v1/auctions/receipts/verifier-keys``)."""
        auction_id = path_id(pk, "auction")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            receipt = services.bid_submit(
                actor=self.actor(request), auction=auction_id, **data.validated_data
            )
            return Response(_new_bid_out(receipt), status=201)

        response = self.idempotent(request, run)
        if response.status_code == 201:  # a new answer or a replayed one: sign its receipt now
            bid = response.data
            for r in bid["receipts"]:
                r["note"] = r["note"] or services.receipt_note_of(
                    auction=bid["auction"],
                    bid=bid["id"],
                    bidder=bid["bidder"],
                    version=r["version"],
                    action=r["action"],
                    commitment=r["commitment"],
                    entry_seq=r["entry_seq"],
                    time=r["time"],
                )
        return response


class MyAuctionBidsApi(BaseApi):
    required_scope = "read"

    @extend_schema(
        operation_id="auctions_bids_mine",
        tags=["auctions"],
        parameters=[ID_PARAM[0], PageSerializer],
        responses=responses({200: page_of("AuctionBidPage", BidOutputSerializer)}, 400, 404),
    )
    def get(self, request: Request, pk: str) -> Response:
        """The caller's bids in this auction (withdrawn ones too), with every receipt: a page
        like every list (``?after=&limit=``, ``{"results": [...], "next_after": ...}``)."""
        a = _auction(pk)
        params = query(PageSerializer, request)
        bids = selectors.bid_list(actor=self.actor(request)).filter(auction=a)
        rows, next_after = page_rows(bids, params)
        return Response(
            {"results": BidOutputSerializer(rows, many=True).data, "next_after": next_after}
        )


_BID_PARAMS = [ID_PARAM[0], OpenApiParameter("bid", int, OpenApiParameter.PATH)]


def _my_bid(request: Request, view: BaseApi, pk: str, bid: str) -> Bid:
    found = selectors.bid_get(path_id(bid, "bid"))
    # Another bidder's bid is reported exactly like a missing one.
    if (
        found is None
        or found.auction_id != path_id(pk, "auction")
        or not policy.bid_visible_to(view.actor(request), found)
    ):
        raise NotFound(f"bid {bid} not found")
    return found


class MyBidRetrieveApi(BaseApi):
    required_scope = "read"

    @extend_schema(
        operation_id="auctions_bids_retrieve",
        tags=["auctions"],
        parameters=_BID_PARAMS,
        responses=responses({200: BidOutputSerializer}, 404),
    )
    def get(self, request: Request, pk: str, bid: str) -> Response:
        """One of the caller's bids, with every receipt."""
        return Response(BidOutputSerializer(_my_bid(request, self, pk, bid)).data)


class MyBidAmendApi(BaseApi):
    required_scope = "bid"

    class InputSerializer(_BidInput):
        pass

    @extend_schema(
        operation_id="auctions_bids_amend",
        tags=["auctions"],
        request=InputSerializer,
        parameters=_BID_PARAMS,
        responses=responses({200: BidOutputSerializer}, 400, 404, 409, 422),
    )
    def put(self, request: Request, pk: str, bid: str) -> Response:
        """Replace a bid with a new sealed version (the last one before close counts)."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        receipt = services.bid_amend(
            actor=self.actor(request),
            auction=path_id(pk, "auction"),
            bid=path_id(bid, "bid"),
            **data.validated_data,
        )
        return Response(_bid_out(receipt))


class MyBidWithdrawApi(BaseApi):
    required_scope = "bid"

    @extend_schema(
        operation_id="auctions_bids_withdraw",
        tags=["auctions"],
        parameters=_BID_PARAMS,
        responses=responses({200: BidOutputSerializer}, 404, 409, 422),
    )
    def delete(self, request: Request, pk: str, bid: str) -> Response:
        """Withdraw a bid before close (it is not counted)."""
        receipt = services.bid_withdraw(
            actor=self.actor(request), auction=path_id(pk, "auction"), bid=path_id(bid, "bid")
        )
        return Response(_bid_out(receipt))


MyBidApi = on_one_path("MyBidApi", MyBidRetrieveApi, MyBidAmendApi, MyBidWithdrawApi)


class MyBidListApi(BaseApi):
    required_scope = "read"

    @extend_schema(
        operation_id="bids_list",
        tags=["auctions"],
        parameters=[PageSerializer],
        responses=responses({200: page_of("BidPage", BidOutputSerializer)}, 400),
    )
    def get(self, request: Request) -> Response:
        """The caller's bids in every auction, with their receipts."""
        params = query(PageSerializer, request)
        qs: QuerySet[Bid] = selectors.bid_list(actor=self.actor(request))
        rows, next_after = page_rows(qs, params)
        return Response(
            {"results": BidOutputSerializer(rows, many=True).data, "next_after": next_after}
        )


class ReceiptVerifierKeysApi(TextApi):
    @extend_schema(
        operation_id="auctions_receipt_verifier_keys",
        summary="The receipt verifier keys",
        description="One C2SP signed-note verifier key per line (name+hash+base64 key): every "
        "key bid receipts have been signed with, old and current. Not the ledger's checkpoint "
        "keys (GET /api/v1/ledger/verifier-keys): receipts have a key of their own. Pin them "
        "out of band, like the ledger's.",
        tags=["auctions"],
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request: Request) -> HttpResponse:
        text = "".join(v.to_string() + "\n" for v in receipts.receipt_verifiers())
        return HttpResponse(text, content_type="text/plain; charset=utf-8")


urlpatterns = [
    path(
        "auctions/receipts/verifier-keys",
        ReceiptVerifierKeysApi.as_view(),
        name="auction-receipt-verifier-keys",
    ),
    path("auctions", AuctionsApi.as_view(), name="auctions"),
    path("auctions/<str:pk>", AuctionRetrieveApi.as_view(), name="auction"),
    path("auctions/<str:pk>/schedule", AuctionScheduleApi.as_view(), name="auction-schedule"),
    path("auctions/<str:pk>/cancel", AuctionCancelApi.as_view(), name="auction-cancel"),
    path("auctions/<str:pk>/key-release", KeyReleaseApi.as_view(), name="auction-key-release"),
    path("trustee-keys", TrusteeKeysApi.as_view(), name="trustee-keys"),
    path("auctions/<str:pk>/result", AuctionResultApi.as_view(), name="auction-result"),
    path("auctions/<str:pk>/book", AuctionBookApi.as_view(), name="auction-book"),
    path("auctions/<str:pk>/bids", BidSubmitApi.as_view(), name="auction-bids"),
    path("auctions/<str:pk>/bids/mine", MyAuctionBidsApi.as_view(), name="auction-my-bids"),
    path("auctions/<str:pk>/bids/<str:bid>", MyBidApi.as_view(), name="auction-my-bid"),
    path("bids", MyBidListApi.as_view(), name="bids"),
]
