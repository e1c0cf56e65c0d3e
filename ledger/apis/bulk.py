"""``POST /api/v1/bulk``: up to 1,000 issuances, transfers, retirements and cancellations,
applied all-or-nothing."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ..bulk import bulk_apply
from .auth import scopes_of
from .base import BaseApi


class BulkApi(BaseApi):
    # Each operation is checked against its own scope inside; any key may call.
    required_scope = None

    class InputSerializer(serializers.Serializer):
        operations = serializers.ListField(
            child=serializers.DictField(), max_length=1000, min_length=1
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            201: inline_serializer(
                "BulkResult",
                {
                    "results": serializers.ListField(child=serializers.DictField()),
                },
            ),
            400: OpenApiTypes.OBJECT,
        },
        operation_id="bulk_apply",
        tags=["credits"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            results = bulk_apply(
                actor=self.actor(request),
                scopes=scopes_of(request),
                operations=data.validated_data["operations"],
            )
            return Response({"results": results}, status=201)

        return self.idempotent(request, run)


urlpatterns = [path("bulk", BulkApi.as_view(), name="bulk")]
