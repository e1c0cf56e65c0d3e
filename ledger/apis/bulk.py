"""``POST /api/v1/bulk``: up to 1,000 issuances, transfers, retirements and cancellations,
applied all-or-nothing."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ..bulk import MAX_OPERATIONS, bulk_apply
from ..inputs import CancelBody, IssueBody, RetireBody, TransferBody
from .auth import scopes_of
from .base import BaseApi, Body
from .base import responses as _responses


def _operation(kind: str, serializer: type[serializers.Serializer]) -> serializers.Serializer:
    """The schema of one operation: its single endpoint's body and ``"op": kind``."""
    name = f"Bulk{kind.title()}"
    fields = {"__module__": __name__, "op": serializers.ChoiceField(choices=[kind])}
    return type(name, (serializer,), fields)()


# The schema of the request: ledger/bulk.py validates each operation with its endpoint's body
# (ledger/inputs.py, by op), which a plain list of objects does not say.
_OPERATIONS = PolymorphicProxySerializer(
    component_name="BulkOperation",
    serializers={
        "issue": _operation("issue", IssueBody),
        "transfer": _operation("transfer", TransferBody),
        "retire": _operation("retire", RetireBody),
        "cancel": _operation("cancel", CancelBody),
    },
    resource_type_field_name="op",
)


class BulkApi(BaseApi):
    # Each operation is checked against its own scope inside; any key may call.
    required_scope = None

    class InputSerializer(Body):
        operations = serializers.ListField(
            child=serializers.DictField(), max_length=MAX_OPERATIONS, min_length=1
        )

    @extend_schema(
        request=inline_serializer(
            "BulkInput",
            {
                "operations": serializers.ListField(
                    child=_OPERATIONS, min_length=1, max_length=MAX_OPERATIONS
                )
            },
        ),
        responses=_responses(
            {
                201: inline_serializer(
                    "BulkResult",
                    {"results": serializers.ListField(child=serializers.DictField())},
                )
            },
            404,
            409,
            422,
        ),
        operation_id="bulk_apply",
        tags=["credits"],
        description="Up to 1,000 issuances, transfers, retirements and cancellations, each "
        "shaped like its endpoint's body plus op, applied in order, all or nothing. Each needs "
        "its own scope (403 names the first that lacks it); a refusal names the failing "
        "operation in detail.index and is the refusal its endpoint would give.",
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
