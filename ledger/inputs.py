"""What the registry's write operations take from outside, as the API's bodies give it: decimal
strings for amounts (an integer of base units inside), ids, patterns, free text that is not
blank, JSON types as the schema states them; and the bodies of the operations a bulk request
carries (issue, transfer, retire, cancel).

The API's views (``ledger/apis/``) and bulk import (``ledger/bulk.py``) both validate with these,
so an operation in a bulk request is checked exactly as its endpoint checks it, and neither
imports the other. The fields state their own OpenAPI schema (``Described``,
``ledger/apis/schema.py``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from .core import origin
from .core.quantity import (
    QuantityError,
    format_hectares,
    format_share,
    format_tonnes,
    parse_hectares,
    parse_share,
    parse_tonnes,
)

MAX_ID = 2**62  # the largest id the API takes (ids from outside are 1 to MAX_ID)


# ---- decimal strings ------------------------------------------------------------------------
# Each amount is a field of its own, alike but for what its schema states: its name, example,
# decimals, bounds and parser.


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
    """A field that states its own OpenAPI schema (``DescribedFieldScheme`` in
    ``ledger/apis/schema.py``), which may differ between what a request may send and what an
    answer holds."""

    def openapi(self, direction: str) -> dict[str, Any]:
        raise NotImplementedError


class DecimalStringField(Described, serializers.Field):
    """A decimal string at the edge, an integer of base units inside (kg, m², basis points).
    Exactly the strings ``regex`` matches are taken, and the schema states that pattern
    (``ledger/apis/schema.py``): no sign, spaces, leading zeros or JSON numbers, which the
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


# ---- text, patterns, bodies ----------------------------------------------------------------

# Free text holds a character other than whitespace: DRF trims text and refuses what is left
# blank. The pattern says so in a form Python and ECMA (the OpenAPI schema's) read alike: its
# whitespace is Python's str.isspace() (ECMA's \s lacks U+001C-U+001F and U+0085; Python's lacks
# U+FEFF, counted as blank here). Unanchored: it asks for one such character anywhere, which
# stays cheap to generate for a fuzzer at any length. DRF also refuses NUL in any text, which
# the schema states as "not: {pattern: \u0000}" (``ledger/apis/schema.py``'s AutoSchema).
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


class HectaresField(DecimalStringField):
    """Hectares with at most four decimals <-> integer square metres (more than 0, less than a
    billion hectares: ``MAX_AREA_M2``)."""

    what = "area"
    example = "41.5"
    places = 4
    regex = decimal_regex(4, 9, zero=False)
    output_regex = r"(0|[1-9][0-9]*)\.[0-9]{4}"

    def parse(self, text: str) -> int:
        m2 = parse_hectares(text)
        if m2 == 0:
            raise QuantityError("zero", "area must be greater than zero")
        return m2

    def format(self, value: int) -> str:
        return format_hectares(value)


class ShareField(DecimalStringField):
    """A percentage, 0 to 100 with at most two decimals <-> integer basis points."""

    what = "buffer share"
    example = "20"
    places = 2
    regex = r"(100(\.0{1,2})?|[1-9]?[0-9](\.[0-9]{1,2})?)"
    output_regex = r"(100|[1-9]?[0-9])\.[0-9]{2}"

    def parse(self, text: str) -> int:
        return parse_share(text)

    def format(self, value: int) -> str:
        return format_share(value)


@extend_schema_field(
    {"type": "string", "enum": ["", *(r.code for r in origin.REGISTRIES)], "maxLength": 64}
)
class OriginRegistryField(serializers.CharField):
    """A registry of origin: the list's code (``ledger/core/origin.py``). The service also takes
    its aliases and other spellings, and the handles of this ledger's own registries, which the
    schema leaves out: it states the canonical codes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=64, required=False, allow_blank=True, default="", **kwargs)


# ---- the bodies bulk import takes too -------------------------------------------------------
# Each endpoint's InputSerializer is its body here (``class InputSerializer(TransferBody)``: the
# schema names the component after the view), and ``ledger/bulk.py`` checks the same operation
# in a bulk request with it.


class IssueBody(Body):
    project = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    monitoring_start = serializers.DateField(help_text="ISO 8601 date")
    monitoring_end = serializers.DateField(help_text="ISO 8601 date, inclusive")
    vintage = serializers.IntegerField(
        min_value=1990, max_value=2200, required=False, help_text="default: the end's year"
    )
    verification_body = serializers.CharField(max_length=200)
    verification_report_sha256 = pattern(SHA256_HEX)
    quantity = TonnesField(help_text="tonnes CO2e issued, buffer share included")
    buffer_share = ShareField()
    holder = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, help_text="the holding account credited"
    )
    origin_registry = OriginRegistryField(
        help_text=(
            "for credits imported from another registry (a code as for projects); "
            "default: the project's"
        ),
    )
    origin_tx_id = serializers.CharField(
        max_length=128,
        required=False,
        allow_null=True,
        default=None,
        help_text=(
            "the issuance's id there; each is issued once, whatever its spelling (compared "
            "after normalisation, as origin ids)"
        ),
    )


class TransferBody(Body):
    batch = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    sender = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    recipient = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    quantity = TonnesField()


class RetireBody(Body):
    batch = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    account = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    quantity = TonnesField()
    beneficiary = serializers.CharField(max_length=300)
    purpose = serializers.CharField(max_length=300)
    jurisdiction = pattern(JURISDICTION, help_text="ISO 3166-2, e.g. CN-ZJ")
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class CancelBody(Body):
    batch = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    account = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    quantity = TonnesField()
    reason = serializers.CharField(
        max_length=2000, help_text="why, e.g. exported to another registry"
    )
    destination = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )
