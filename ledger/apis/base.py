"""What every API view shares: authentication, scopes, throttling, idempotent POSTs (run again
when the database gives up on them against concurrent ones), and the decimal-string fields for
quantities."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from ..actors import Actor
from ..core.quantity import QuantityError, format_tonnes, parse_tonnes
from ..exceptions import InvalidInput, NotFound
from .auth import (
    PUBLIC,
    ApiKeyAuthentication,
    ApiKeyRateThrottle,
    HasScope,
    SessionAuthentication,
)
from .auth import actor_for as _actor_for
from .errors import retryable
from .idempotency import idempotent

MAX_ID = 2**62
ATTEMPTS = 3  # a write's transaction, run at most this many times

logger = logging.getLogger(__name__)


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
        return retrying(lambda: idempotent(request, handler))


def retrying(run: Callable[[], Response]) -> Response:
    """Run ``run``, which opens the outermost transaction (``atomic(durable=True)``), again
    when the database rolled that transaction back as a deadlock's victim or a serialization
    failure. The request is then as if it had not arrived: nothing of it was committed (nor its
    Idempotency-Key's record, so the key still applies it at most once) and its on-commit
    hooks were dropped. What the last attempt still meets answers 503 (``errors.py``)."""
    attempt = 1
    while True:
        try:
            return run()
        except DatabaseError as exc:
            # Inside a caller's transaction (a test's), only a savepoint rolled back: the
            # caller's transaction is aborted and nothing can run in it again.
            if attempt == ATTEMPTS or not retryable(exc) or connection.in_atomic_block:
                raise
            logger.info("attempt %d rolled back (%s); running it again", attempt, exc.__cause__)
        # The other side of a deadlock still holds its locks for a moment; spread the retries.
        time.sleep(random.uniform(0.005, 0.025) * attempt)
        attempt += 1


class PublicApi(APIView):
    """Public by design (the log's entries, checkpoints, proofs, keys): how outsiders check us."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    # HasScope lets anyone in for PUBLIC; on a path that also carries an authenticated
    # operation (on_one_path), each method keeps its own rule.
    permission_classes = [HasScope]
    required_scope: str | None = PUBLIC
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


# ---- what every area's views share: errors, pages, ids, several operations on one path -------


class ErrorSerializer(serializers.Serializer):
    """Every error, whatever its status (``ledger/apis/errors.py``)."""

    code = serializers.CharField(help_text="stable machine-readable code")
    message = serializers.CharField()
    detail = serializers.DictField(help_text="per field: its code (and message)")


def responses(ok: dict[Any, Any], *errors: int) -> dict[Any, Any]:
    # 401, 403 (scope) and 429 can answer any authenticated operation, and 503 (with
    # Retry-After) any that met the database's contention (errors.py).
    return {**ok, **{code: ErrorSerializer for code in sorted({401, 403, 429, 503, *errors})}}


class PageSerializer(serializers.Serializer):
    """``?after=&limit=``, validated like any input."""

    after = serializers.IntegerField(
        min_value=0, max_value=MAX_ID, default=0, help_text="return rows with id > after"
    )
    limit = serializers.IntegerField(min_value=1, max_value=500, default=100)


def query(serializer: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """Query parameters validated like a body: a bad one is a 400 naming it, never a 500."""
    params = serializer(data=request.query_params)
    params.is_valid(raise_exception=True)
    return dict(params.validated_data)


def page_rows(qs: QuerySet[Any], params: dict[str, Any]) -> tuple[list[Any], int | None]:
    after, limit = params["after"], params["limit"]
    # One row more than the page: next_after is null exactly when nothing follows.
    rows = list(qs.filter(pk__gt=after).order_by("pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1].pk if more else None


def page(
    qs: QuerySet[Any], params: dict[str, Any], output: type[serializers.Serializer]
) -> Response:
    rows, next_after = page_rows(qs, params)
    return Response({"results": output(rows, many=True).data, "next_after": next_after})


def page_of(name: str, item: type[serializers.Serializer], cursor: str = "id") -> Any:
    """The schema of a page of ``item``."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "__module__": __name__,
            "results": item(many=True),
            "next_after": serializers.IntegerField(
                allow_null=True,
                help_text=f"pass as ?after= for the next page (an {cursor}); null at the end",
            ),
        },
    )


def path_id(raw: str, what: str) -> int:
    """An id from the URL. Anything that cannot be one (``abc``, ``-1``, 10**30) is not found:
    the same JSON 404 as an unknown id, never Django's HTML page or a database overflow."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 19 and 0 < int(raw) < MAX_ID:
        return int(raw)
    raise NotFound(f"{what} {raw} not found")


ID_PARAM = [OpenApiParameter("id", int, OpenApiParameter.PATH)]


def on_one_path(name: str, *operations: type[APIView]) -> type[APIView]:
    """The view for a path that carries several operations (a collection's GET and POST).

    Each operation is its own class; Django routes a path to one view, so this makes a class
    that inherits each operation's handler and asks for that operation's scope."""
    scopes: dict[str, str | None] = {}
    nested: set[str] = set()
    for op in operations:
        own = vars(op)
        for method in op.http_method_names:
            if method in own:
                if method.upper() in scopes:
                    raise ImproperlyConfigured(f"{name}: two handlers for {method.upper()}")
                scopes[method.upper()] = getattr(op, "required_scope", None)
        # Handlers use self.InputSerializer etc.: a name two operations define would resolve
        # to the first one's for both.
        names = {k for k, v in own.items() if isinstance(v, type)}
        if names & nested:
            raise ImproperlyConfigured(f"{name}: operations share {sorted(names & nested)}")
        nested |= names
    doc = ", ".join(op.__name__ for op in operations)
    return type(
        name,
        operations,
        {
            "__module__": operations[0].__module__,
            "__doc__": f"Serves {doc}.",
            "required_scopes": scopes,
        },
    )
