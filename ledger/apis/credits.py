"""Moving credits: transfers (and, in this module, retirements, cancellations, reversals)."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from .. import services
from ..core.entry import decode_entry
from .base import BaseApi, TonnesField


class TransferCreateApi(BaseApi):
    required_scope = "transfer"

    class InputSerializer(serializers.Serializer):
        batch = serializers.IntegerField(min_value=1)
        sender = serializers.IntegerField(min_value=1)
        recipient = serializers.IntegerField(min_value=1)
        quantity = TonnesField()

    class OutputSerializer(serializers.Serializer):
        entry_seq = serializers.IntegerField()
        batch = serializers.IntegerField()
        sender = serializers.IntegerField()
        recipient = serializers.IntegerField()
        quantity = TonnesField()
        time = serializers.CharField()

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer},
        operation_id="transfers_create",
        tags=["credits"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            entry = services.credit_transfer(actor=self.actor(request), **data.validated_data)
            decoded = decode_entry(bytes(entry.body))
            out: dict[str, Any] = {
                "entry_seq": entry.seq,
                "batch": decoded.data["batch"],
                "sender": decoded.data["from"],
                "recipient": decoded.data["to"],
                "quantity": decoded.data["quantity"],
                "time": decoded.time,
            }
            return Response(self.OutputSerializer(out).data, status=status.HTTP_201_CREATED)

        return self.idempotent(request, run)


urlpatterns = [
    path("transfers", TransferCreateApi.as_view(), name="transfer-create"),
]
