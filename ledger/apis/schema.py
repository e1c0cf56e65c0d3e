"""OpenAPI descriptions of our authentication classes (drf-spectacular extensions)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as _AutoSchema


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


class AutoSchema(_AutoSchema):
    """Names nested ``InputSerializer``/``OutputSerializer`` components after their view
    (``TransferCreateInput``), so one-class-per-operation views don't collide in the schema."""

    def _get_serializer_name(
        self, serializer: Any, direction: Any, bypass_extensions: bool = False
    ) -> str:
        name = super()._get_serializer_name(serializer, direction, bypass_extensions)
        cls = getattr(serializer, "child", serializer).__class__
        parts = cls.__qualname__.split(".")
        if len(parts) > 1 and name.startswith(("Input", "Output")):
            return parts[0].removesuffix("Api") + name
        return name
