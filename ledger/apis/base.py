"""What every API view shares: authentication, scopes, throttling, idempotent POSTs, and the
decimal-string fields for quantities."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from ..actors import Actor
from ..core.quantity import QuantityError, format_tonnes, parse_tonnes
from ..exceptions import InvalidInput
from .auth import ApiKeyAuthentication, ApiKeyRateThrottle, HasScope, SessionAuthentication
from .auth import actor_for as _actor_for
from .idempotency import idempotent

MAX_ID = 2**62


def page_params(request: Request) -> tuple[int, int]:
    """``?after=<id or seq>&limit=<1..500>`` (defaults 0 and 100), validated: 400, never 500."""
    try:
        after = int(request.query_params.get("after", 0))
        limit = int(request.query_params.get("limit", 100))
    except ValueError:
        raise InvalidInput(
            "after and limit must be integers", detail={"after": "invalid"}
        ) from None
    if not 0 <= after < MAX_ID or not 1 <= limit <= 500:
        raise InvalidInput(
            "after must be >= 0 and limit 1 to 500", detail={"limit": "out_of_range"}
        )
    return after, limit


class BaseApi(APIView):
    """An authenticated operation. Set ``required_scope`` (or ``required_scopes`` by method)."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [HasScope]
    throttle_classes = [ApiKeyRateThrottle]
    required_scope: str | None = "read"

    def actor(self, request: Request) -> Actor:
        return _actor_for(request)

    def idempotent(self, request: Request, handler: Any) -> Response:
        return idempotent(request, handler)


class PublicApi(APIView):
    """Public by design (the log's entries, checkpoints, proofs, keys): how outsiders check us."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [AllowAny]
    throttle_classes = [AnonRateThrottle, ApiKeyRateThrottle]


@extend_schema_field({"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,3})?$", "example": "2340.1"})
class TonnesField(serializers.Field):
    """A decimal string of tonnes with at most three decimals <-> integer kgCO2e."""

    default_error_messages = {"invalid": 'A decimal string of tonnes, e.g. "2340.1".'}

    def __init__(self, *, allow_zero: bool = False, **kwargs: Any) -> None:
        self.allow_zero = allow_zero
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        try:
            return parse_tonnes(data, allow_zero=self.allow_zero)
        except QuantityError as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from None

    def to_representation(self, value: int) -> str:
        return format_tonnes(value)
