"""What every API view shares: authentication, scopes, throttling, idempotent POSTs (run again
when the database gives up on them against concurrent ones), and the decimal-string fields for
quantities."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.validators import RegexValidator
from django.db import DatabaseError, connection
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.negotiation import DefaultContentNegotiation
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
    content_negotiation_class = AcceptNegotiation


def decimal_regex(places: int, digits: int, *, zero: bool) -> str:
    """A non-negative decimal string as the API writes one: at most ``digits`` digits before
    the point and no leading zeros, at most ``places`` after it; zero only if ``zero``.
    (Unanchored; the same regex in Python and ECMA.)"""
    frac = f"(\\.[0-9]{{1,{places}}})?" if places else ""
    alternatives = [f"[1-9][0-9]{{0,{digits - 1}}}{frac}"]
    if zero:
        alternatives.append(f"0{frac}")
    elif places:
        # Below one: a non-zero digit among the decimals (0.5, 0.05, 0.005).
        small = [
            "0" * i + "[1-9]" + (f"[0-9]{{0,{places - 1 - i}}}" if i < places - 1 else "")
            for i in range(places)
        ]
        alternatives.append(f"0\\.({'|'.join(small)})")
    return f"({'|'.join(alternatives)})"


class Described:
    """A field that states its own OpenAPI schema (``schema.DescribedFieldScheme``), which may
    differ between what a request may send and what an answer holds."""

    def openapi(self, direction: str) -> dict[str, Any]:
        raise NotImplementedError


class DecimalStringField(Described, serializers.Field):
    """A decimal string at the edge, an integer of base units inside (kg, m², basis points).
    Exactly the strings ``regex`` matches are taken, and the schema states that pattern
    (``schema.DecimalStringScheme``): no sign, spaces, leading zeros or JSON numbers, which the
    parsers below would take. Answers are written with all ``places`` decimals."""

    what = "amount"
    example = "1"
    places = 0
    regex = ""  # the input pattern
    output_regex = ""  # what answers hold

    def parse(self, text: str) -> int:
        raise NotImplementedError

    def format(self, value: int) -> str:
        raise NotImplementedError

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, str):
            raise serializers.ValidationError(
                f'{self.what} must be a decimal string, e.g. "{self.example}"',
                code="not_a_decimal",
            )
        try:
            value = self.parse(data)  # its codes say what is wrong: negative, too_precise...
        except QuantityError as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from None
        if not re.fullmatch(self.regex, data):
            raise serializers.ValidationError(
                f"{self.what} must be written with digits only (no sign, spaces or leading "
                f'zeros), at most {self.places} decimals, within range, e.g. "{self.example}"',
                code="not_a_decimal",
            )
        return value

    def to_representation(self, value: int) -> str:
        return self.format(value)

    def openapi(self, direction: str) -> dict[str, Any]:
        if direction == "request":
            return {"type": "string", "pattern": f"^{self.regex}$", "example": self.example}
        return {"type": "string", "pattern": f"^{self.output_regex}$"}


class TonnesField(DecimalStringField):
    """Tonnes CO2e with at most three decimals <-> integer kgCO2e (more than 0, less than
    10^12 t: ``MAX_KG``)."""

    what = "quantity"
    example = "2340.1"
    places = 3
    regex = decimal_regex(3, 12, zero=False)
    output_regex = r"(0|[1-9][0-9]*)\.[0-9]{3}"

    def parse(self, text: str) -> int:
        return parse_tonnes(text)

    def format(self, value: int) -> str:
        return format_tonnes(value)


# ---- what every area's views share: input, errors, pages, ids, several operations on one path --

# Free text holds a character other than whitespace: DRF trims text and refuses what is left
# blank. The pattern says so in a form Python and ECMA (the OpenAPI schema's) read alike: its
# whitespace is Python's str.isspace() (ECMA's \s lacks U+001C-U+001F and U+0085; Python's lacks
# U+FEFF, counted as blank here). Unanchored: it asks for one such character anywhere, which
# stays cheap to generate for a fuzzer at any length. DRF also refuses NUL in any text, which
# the schema states as "not: {pattern: \u0000}" (schema.AutoSchema).
NOT_BLANK = RegexValidator(
    r"[^\s\x00\x1c-\x1f\x85\ufeff]",
    "must hold a character other than whitespace",
    code="blank",
)


# Shapes the services check too; here they give the caller a field-by-field 400, and the schema
# states them.
CODE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
JURISDICTION = r"[A-Z]{2}-[A-Z0-9]{1,3}"
SHA256_HEX = r"[0-9a-f]{64}"


def pattern(regex: str, **kwargs: Any) -> serializers.RegexField:
    """Text that ``regex`` matches whole, taken as sent: not trimmed (``" CN-GD"`` is refused,
    as the schema says), and ``\\Z``, not ``$``, which would let a trailing newline through.
    The schema writes the anchors ``^...$``."""
    return serializers.RegexField(rf"\A(?:{regex})\Z", trim_whitespace=False, **kwargs)


class Input(serializers.Serializer):
    """What a request says, in a body or a query string. Free text (a ``CharField`` that may
    not be blank) is held to ``NOT_BLANK``, which the schema states as its pattern."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for field in fields.values():
            if (
                type(field) is serializers.CharField
                and not field.allow_blank
                and field.trim_whitespace
            ):
                field.validators.append(NOT_BLANK)
        return fields


# The JSON type each kind of field takes in a body: DRF's fields would also take 5 for "5",
# "5" for 5 and "true" for true, which the schema calls invalid.
_JSON_TYPES: tuple[tuple[type[serializers.Field], type | tuple[type, ...]], ...] = (
    (serializers.BooleanField, bool),
    (serializers.IntegerField, int),
    (serializers.CharField, str),
    (serializers.ChoiceField, str),
    (serializers.DateField, str),
    (serializers.DateTimeField, str),
)


def _json_type_ok(field: serializers.Field, value: Any) -> bool:
    for kind, wanted in _JSON_TYPES:
        if isinstance(field, kind):
            if isinstance(value, bool) and wanted is not bool:
                return False
            return isinstance(value, wanted)
    return True  # other fields check their own input (TonnesField, GeometryField...)


class Body(Input):
    """A request body: each field takes only the JSON type the schema gives it."""

    def to_internal_value(self, data: Any) -> Any:
        wrong: dict[str, Any] = {}
        if isinstance(data, Mapping):
            for field in self._writable_fields:
                name = str(field.field_name)
                value = data.get(name, empty)
                if value is not empty and value is not None and not _json_type_ok(field, value):
                    message = str(field.error_messages.get("invalid", "Wrong type."))
                    wrong[name] = [serializers.ErrorDetail(message, code="invalid")]
        try:
            validated = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not wrong or not isinstance(exc.detail, dict):
                raise
            raise serializers.ValidationError({**exc.detail, **wrong}) from None
        if wrong:
            raise serializers.ValidationError(wrong)
        return validated


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
