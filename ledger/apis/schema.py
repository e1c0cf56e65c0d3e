"""The OpenAPI schema (drf-spectacular): our authentication classes, fields that state their own
schema, and what every operation shares, added here so that no operation can forget it:

* who may call: an authenticated operation requires a key (or the portal's session); a public
  one requires nothing, and takes a key if one is sent (then it must be valid: 401);
* the ``Idempotency-Key`` header of every POST that runs once per key (``base.idempotent``);
* the errors every operation of its kind can answer, in the one error shape (``errors.py``),
  whose ``code`` is one of the codes that status carries (each code states its statuses:
  ``bluecarbon/errors.py``). An operation declares only the errors particular to it."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.openapi import AutoSchema as _AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from bluecarbon.errors import Codes

from .auth import PUBLIC
from .base import AcceptNegotiation, ErrorSerializer
from .idempotency import HEADER as IDEMPOTENCY_HEADER


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "ledger.apis.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "bck_<prefix>_<secret>",
            "description": "A per-organization API key, shown once at creation.",
        }


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "ledger.apis.auth.SessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


class DescribedFieldScheme(OpenApiSerializerFieldExtension):
    """Fields that state their own schema (``inputs.Described``): decimal strings, geometries."""

    target_class = "ledger.inputs.Described"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> Any:
        return self.target.openapi(direction)


IDEMPOTENCY_KEY = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
    OpenApiParameter.HEADER,
    description="Your unique id for this request (printable ASCII, e.g. a UUID): a retry "
    "with the same key and body returns the stored answer (header Idempotent-Replayed: true) "
    "and applies nothing again; the same key with another body is 422 "
    "idempotency_key_reused; while the first is running, 409 idempotency_key_in_progress.",
)

RETRY_AFTER = {
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
    "description": "seconds to wait before sending the request again (also detail.retry_after)",
}
REPLAYED = {
    "schema": {"type": "string", "enum": ["true"]},
    "description": "present when the answer is the one stored for this Idempotency-Key: "
    "nothing was applied again",
}

_ERRORS: dict[int, type[serializers.Serializer]] = {}


def error_serializer(status: int) -> type[serializers.Serializer]:
    """The error shape of ``status``: its ``code`` is one of the codes answered with it."""
    if status not in _ERRORS:
        codes = sorted(str(code) for code in Codes.every() if status in code.statuses)
        field = extend_schema_field({"type": "string", "enum": codes})(
            type(f"Error{status}Code", (serializers.CharField,), {"__module__": __name__})
        )
        _ERRORS[status] = type(
            f"Error{status}",
            (ErrorSerializer,),
            {"__module__": __name__, "code": field(help_text="stable machine-readable code")},
        )
    return _ERRORS[status]


def _status(key: Any) -> int:
    return int(key[0] if isinstance(key, tuple) else key)


class AutoSchema(_AutoSchema):
    """Names nested ``InputSerializer``/``OutputSerializer`` components after their view
    (``TransferCreateInput``), so one-class-per-operation views don't collide in the schema; adds
    what every operation shares (the module's docstring)."""

    def _get_serializer_name(
        self, serializer: Any, direction: Any, bypass_extensions: bool = False
    ) -> str:
        name = super()._get_serializer_name(serializer, direction, bypass_extensions)
        cls = getattr(serializer, "child", serializer).__class__
        parts = cls.__qualname__.split(".")
        view = parts[0].removesuffix("Api")
        if len(parts) > 1 and name.startswith(("Input", "Output")):
            return view + name
        if len(parts) > 1 and name.startswith("PatchedInput"):  # a PATCH's body
            return "Patched" + view + name.removeprefix("Patched")
        return name

    def _map_serializer_field(
        self, field: Any, direction: Any, bypass_extensions: bool = False
    ) -> Any:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and isinstance(schema, dict)
            and schema.get("type") == "string"
            and "enum" not in schema
        ):
            # DRF refuses NUL in any text (ProhibitNullCharactersValidator).
            schema["not"] = {"pattern": "\\u0000"}
        return schema

    def _map_basic_serializer(self, serializer: Any, direction: Any) -> Any:
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and getattr(serializer, "refuses_other_members", False):
            schema["additionalProperties"] = False
        return schema

    def _public(self) -> bool:
        view = self.view
        scope = getattr(view, "required_scopes", {}).get(
            self.method, getattr(view, "required_scope", None)
        )
        return scope == PUBLIC

    def get_auth(self) -> list[dict[str, Any]]:
        auths = super().get_auth()  # registers the schemes
        if self._public():
            # Anyone may call; a key may be sent (to be throttled by the key's rate).
            return [{}, {ApiKeyScheme.name: []}]
        return auths

    def _takes_idempotency_key(self) -> bool:
        return self.method == "POST" and getattr(self.view, "takes_idempotency_key", False)

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if self._takes_idempotency_key():
            parameters.append(IDEMPOTENCY_KEY)
        return parameters

    def _shared_errors(self) -> set[int]:
        # Any operation: a key that is not valid (401), an Accept it cannot serve (406),
        # throttled (429), the database gave up against concurrent requests (503).
        statuses = {401, 406, 429, 503}
        if not self._public():
            statuses.add(403)  # the key lacks the scope
        if self.method in ("POST", "PUT", "PATCH"):
            statuses |= {400, 413, 415}  # a body that is not JSON, too large, not of JSON type
        if any(
            serializers_like(p) or getattr(p, "location", None) == OpenApiParameter.QUERY
            for p in self.get_override_parameters()
        ):
            statuses.add(400)
        if "{" in self.path:
            statuses.add(404)  # no such object, or not the caller's
        if self._takes_idempotency_key():
            statuses |= {400, 409, 422}  # a malformed key; the key's first request running; reused
        return statuses

    def _get_format_parameters(self) -> list[Any]:
        # Our views choose the representation by Accept alone (base.AcceptNegotiation).
        if issubclass(self.view.content_negotiation_class, AcceptNegotiation):
            return []
        return list(super()._get_format_parameters())

    def _get_response_bodies(self, direction: Any = "response") -> Any:
        # extend_schema overrides get_response_serializers (with the view's declared
        # answers), so the shared errors are added around it, here.
        declared = self.get_response_serializers()
        if not isinstance(declared, dict):
            return super()._get_response_bodies(direction)
        answers = self._with_shared_errors(declared)
        self.get_response_serializers = lambda: answers
        try:
            bodies = super()._get_response_bodies(direction)
        finally:
            del self.get_response_serializers
        for status, response in bodies.items():
            if status in ("429", "503"):
                response["headers"] = {"Retry-After": RETRY_AFTER}
            elif status.startswith("2") and self._takes_idempotency_key():
                response["headers"] = {"Idempotent-Replayed": REPLAYED}
        return bodies

    def _with_shared_errors(self, declared: dict[Any, Any]) -> dict[Any, Any]:
        html = not any(issubclass(r, JSONRenderer) for r in self.view.renderer_classes)
        answers: dict[Any, Any] = dict(declared)
        have = {_status(key) for key in declared}
        for status in self._shared_errors() - have:
            answers[(status, "text/html") if html else status] = (
                OpenApiTypes.STR if html else ErrorSerializer
            )
        out = {
            key: error_serializer(_status(key)) if value is ErrorSerializer else value
            for key, value in answers.items()
        }
        return dict(sorted(out.items(), key=lambda item: _status(item[0])))


def serializers_like(parameter: Any) -> bool:
    """A serializer given as parameters (a FilterSerializer: query parameters)."""
    return isinstance(parameter, serializers.Serializer) or (
        isinstance(parameter, type) and issubclass(parameter, serializers.Serializer)
    )
