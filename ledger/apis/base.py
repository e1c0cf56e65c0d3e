"""What every API view shares: authentication, scopes, throttling, idempotent POSTs (run again
when the database gives up on them against concurrent ones), pages, ids from the path. The
fields and bodies requests are read with are ``ledger/inputs.py``'s (bulk import reads with them
too); the names the auction house's APIs take from here are handed on.

Each operation is a class of its own that states its own schema (STYLE.md), so the operations
look alike: a schema decorator, then a handler that parses, calls one service and answers, or
for reads ``RetrieveApi.one`` and ``ListApi.paged`` below. What repeats is that declaration;
what they do alike lives here once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from bluecarbon.contention import retrying

from ..actors import Actor
from ..exceptions import InvalidInput, NotFound
from ..inputs import MAX_ID as MAX_ID  # handed on: the auction house's APIs take these from here
from ..inputs import Body as Body
from ..inputs import Input
from ..inputs import TonnesField as TonnesField
from ..inputs import decimal_regex as decimal_regex
from ..inputs import pattern as pattern
from .auth import (
    PUBLIC,
    ApiKeyAuthentication,
    ApiKeyRateThrottle,
    HasScope,
    SessionAuthentication,
)
from .auth import actor_for as _actor_for
from .idempotency import idempotent


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


class _NoFormatParameter:
    URL_FORMAT_OVERRIDE = None  # the one setting DefaultContentNegotiation reads


class AcceptNegotiation(DefaultContentNegotiation):
    """The representation is chosen by ``Accept`` alone. DRF would also read ``?format=`` and
    answer 404 to a value no renderer has: any operation would then answer 404 to a query
    parameter its schema does not have, and the auctions' ``format`` filter could not be used.
    (The schema view keeps DRF's negotiation: ``/api/v1/schema/?format=json``.)"""

    settings = _NoFormatParameter()  # type: ignore[assignment]


class BaseApi(APIView):
    """An authenticated operation. Set ``required_scope`` (or ``required_scopes`` by method).

    A POST runs once per ``Idempotency-Key`` (``self.idempotent``); an operation that does not
    take the header sets ``takes_idempotency_key = False`` (the schema then omits it)."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [HasScope]
    throttle_classes = [ApiKeyRateThrottle]
    content_negotiation_class = AcceptNegotiation
    required_scope: str | None = "read"
    takes_idempotency_key = True

    def actor(self, request: Request) -> Actor:
        return _actor_for(request)

    def idempotent(self, request: Request, handler: Any) -> Response:
        # idempotent() opens the outermost transaction; a deadlock's victim runs again from
        # the start (bluecarbon/contention.py, which the portal's forms use too).
        return retrying(lambda: idempotent(request, handler))


class PublicApi(APIView):
    """Public by design (the log's entries, checkpoints, proofs, keys): how outsiders check us."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    # HasScope lets anyone in for PUBLIC; on a path that also carries an authenticated
    # operation (on_one_path), each method keeps its own rule.
    permission_classes = [HasScope]
    required_scope: str | None = PUBLIC
    throttle_classes = [AnonRateThrottle, ApiKeyRateThrottle]
    content_negotiation_class = AcceptNegotiation


# ---- what every area's views share: errors, pages, ids, several operations on one path -------


class ErrorSerializer(serializers.Serializer):
    """Every error, whatever its status (``ledger/apis/errors.py``). The schema gives each
    status its own component, whose ``code`` is one of the codes that status carries."""

    code = serializers.CharField(help_text="stable machine-readable code")
    message = serializers.CharField()
    detail = serializers.DictField(help_text="per field: its code (and message)")


def responses(ok: dict[Any, Any], *errors: int) -> dict[Any, Any]:
    """An operation's answers: ``ok`` and the errors particular to it (a 409 of its own, a 404
    for an id in its body). The schema adds those every operation of its kind shares
    (``schema.AutoSchema``: 401, 403, 406, 429, 503; 400, 413 and 415 with a body...)."""
    return {**ok, **{code: ErrorSerializer for code in sorted(set(errors))}}


class PageSerializer(Input):
    """``?after=&limit=``, validated like any input."""

    after = serializers.IntegerField(
        min_value=0, max_value=MAX_ID, default=0, help_text="return rows with id > after"
    )
    limit = serializers.IntegerField(min_value=1, max_value=500, default=100)


def query(serializer: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """Query parameters validated like a body: a bad one is a 400 naming it, never a 500.

    Given as a plain dict, not the QueryDict: DRF reads a form's empty value as no value, so
    ``?ecosystem=`` would list everything instead of being refused like any other bad value.
    A parameter given twice is refused too (which one would count?), and an integer is written
    in ASCII digits: DRF's IntegerField also reads ``1.0``, ``1_000`` and ``\u0661``, which are
    not the schema's ``integer``."""
    given = request.query_params
    fields = serializer().fields
    names: list[str] = list(fields.keys())
    repeated = sorted(name for name in names if len(given.getlist(name)) > 1)
    if repeated:
        raise serializers.ValidationError(
            {
                name: [serializers.ErrorDetail("given more than once", "repeated")]
                for name in repeated
            }
        )
    not_integers = sorted(
        name
        for name, field in fields.items()
        if isinstance(field, serializers.IntegerField)
        and name in given
        and not _integer(given[name])
    )
    if not_integers:
        raise serializers.ValidationError(
            {
                name: [serializers.ErrorDetail("A valid integer is required.", "invalid")]
                for name in not_integers
            }
        )
    params = serializer(data={name: given[name] for name in given})
    params.is_valid(raise_exception=True)
    return dict(params.validated_data)


def _integer(text: str) -> bool:
    digits = text.removeprefix("-")
    return digits.isascii() and digits.isdigit()


def page_rows(qs: QuerySet[Any], params: dict[str, Any]) -> tuple[list[Any], int | None]:
    after, limit = params["after"], params["limit"]
    # One row more than the page: next_after is null exactly when nothing follows.
    rows = list(qs.filter(pk__gt=after).order_by("pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1].pk if more else None


def page(
    qs: QuerySet[Any],
    params: dict[str, Any],
    output: type[serializers.Serializer],
    context: Callable[[list[Any]], dict[str, Any]] | None = None,
) -> Response:
    """A page of ``qs`` as ``output`` writes each row (given ``context(rows)``, if any)."""
    rows, next_after = page_rows(qs, params)
    out = output(rows, many=True, context=context(rows) if context else {})
    return Response({"results": out.data, "next_after": next_after})


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


# ---- the two reads most resources have: one row by its id, a page of rows ---------------------
# A subclass says which rows the caller may see and how each is written; its ``get`` states the
# operation's schema and description and answers ``self.one(...)`` or ``self.paged(...)``.


def retrieve_schema(operation_id: str, tag: str, output: Any) -> Any:
    """The schema of a ``RetrieveApi``'s ``get``: the row as ``output`` writes it, or 404."""
    return extend_schema(
        operation_id=operation_id,
        tags=[tag],
        parameters=ID_PARAM,
        responses=responses({200: output}, 404),
    )


def list_schema(operation_id: str, tag: str, filters: Any, page_schema: Any) -> Any:
    """The schema of a ``ListApi``'s ``get``: ``filters`` in the query, a page (``page_of``)
    or 400."""
    return extend_schema(
        operation_id=operation_id,
        tags=[tag],
        parameters=[filters],
        responses=responses({200: page_schema}, 400),
    )


class RetrieveApi(BaseApi):
    """One of ``rows(actor)``, the rows the caller may see, by the id in its path, as
    ``output`` writes it. A row it may not see is a 404 exactly like an id that does not
    exist: nothing tells another organization that it exists."""

    required_scope = "read"
    what = "row"  # the 404 names it: "batch 7 not found"
    output: type[serializers.Serializer]

    def rows(self, actor: Actor) -> QuerySet[Any]:
        raise NotImplementedError

    def one(self, request: Request, pk: str) -> Response:
        row = self.rows(self.actor(request)).filter(pk=path_id(pk, self.what)).first()
        if row is None:
            raise NotFound(f"{self.what} {pk} not found")
        return Response(self.output(row).data)


class ListApi(BaseApi):
    """A page of ``rows(actor, params)``, the rows the caller may see filtered by the query
    (``FilterSerializer``: ``?after=&limit=`` and the resource's own filters), in id order, as
    ``output`` writes each given ``context(rows)``."""

    required_scope = "read"
    FilterSerializer: type[serializers.Serializer] = PageSerializer
    output: type[serializers.Serializer]

    def rows(self, actor: Actor, params: dict[str, Any]) -> QuerySet[Any]:
        raise NotImplementedError

    def context(self, rows: list[Any]) -> dict[str, Any]:
        return {}

    def paged(self, request: Request) -> Response:
        params = query(self.FilterSerializer, request)
        return page(self.rows(self.actor(request), params), params, self.output, self.context)


def on_one_path(name: str, *operations: type[APIView]) -> type[APIView]:
    """The view for a path that carries several operations (a collection's GET and POST).

    Each operation is its own class; Django routes a path to one view, so this makes a class
    that inherits each operation's handler and asks for that operation's scope."""
    scopes: dict[str, str | None] = {}
    nested: set[str] = set()
    for op in operations:
        own = vars(op)
        for method in op.http_method_names:
            # Its own handler, or one it inherits (ListApi.get); APIView's OPTIONS is no op's.
            if method != "options" and getattr(op, method, None) is not None:
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
