"""Webhook endpoints: register (the signing secret is shown once), list, deactivate, the
delivery log, and replay from a feed cursor."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from .. import entry_types, webhooks
from ..models import WebhookDelivery, WebhookEndpoint
from .base import BaseApi
from .base import responses as _responses


class CircuitOutputSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=webhooks.CIRCUIT_STATES,
        help_text="closed: deliveries are sent; open: nothing is sent until open_until (the "
        "deliveries wait, pending); half_open: the cool-down is over and the next delivery "
        "probes the endpoint (success closes the circuit, failure opens it again)",
    )
    consecutive_failures = serializers.IntegerField(
        min_value=0, help_text="failed attempts in a row; the circuit opens at the limit"
    )
    open_until = serializers.DateTimeField(
        allow_null=True, help_text="open until then, half-open after; null when closed"
    )


class EndpointOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField()
    cursor = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    circuit = serializers.SerializerMethodField()

    @extend_schema_field(CircuitOutputSerializer)
    def get_circuit(self, endpoint: WebhookEndpoint) -> dict[str, Any]:
        return dict(CircuitOutputSerializer(webhooks.endpoint_circuit(endpoint)).data)


class WebhooksApi(BaseApi):
    """Deliveries carry only entries the organization may read, so the read scope suffices."""

    required_scope = "read"

    class InputSerializer(serializers.Serializer):
        url = serializers.URLField(max_length=500)
        event_types = serializers.ListField(
            child=serializers.ChoiceField(choices=sorted(entry_types.all_types())),
            required=False,
            default=list,
        )

    class CreatedSerializer(EndpointOutputSerializer):
        secret = serializers.CharField(help_text="shown once; sign-verification key")

    @extend_schema(
        request=InputSerializer,
        responses=_responses({201: CreatedSerializer}, 400, 404, 409),
        operation_id="webhooks_create",
        tags=["webhooks"],
        description="Register an endpoint. An organization has at most WEBHOOK_MAX_ENDPOINTS "
        "active endpoints (10 by default): one more is 409 webhook_endpoint_limit, with "
        "detail.limit and detail.active; deactivate one (DELETE) first. A URL that is not "
        "http(s), or names a non-public address, is 400 invalid_field (detail.url).",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            endpoint, secret = webhooks.webhook_endpoint_create(
                actor=self.actor(request), **data.validated_data
            )
            out = dict(EndpointOutputSerializer(endpoint).data, secret=secret)
            return Response(out, status=201)

        return self.idempotent(request, run)

    @extend_schema(
        responses={200: EndpointOutputSerializer(many=True)},
        operation_id="webhooks_list",
        tags=["webhooks"],
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request)
        rows = WebhookEndpoint.objects.filter(organization_id=actor.owner_id)
        return Response(EndpointOutputSerializer(rows.order_by("pk"), many=True).data)


class WebhookDetailApi(BaseApi):
    required_scope = "read"

    @extend_schema(
        responses={200: EndpointOutputSerializer}, operation_id="webhooks_delete", tags=["webhooks"]
    )
    def delete(self, request: Request, pk: int) -> Response:
        endpoint = webhooks.webhook_endpoint_deactivate(actor=self.actor(request), endpoint=pk)
        return Response(EndpointOutputSerializer(endpoint).data)


class DeliveryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    entry_seq = serializers.IntegerField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)


class WebhookDeliveriesApi(BaseApi):
    required_scope = "read"

    @extend_schema(
        parameters=[OpenApiParameter("after", int)],
        responses={200: DeliveryOutputSerializer(many=True)},
        operation_id="webhooks_deliveries",
        tags=["webhooks"],
    )
    def get(self, request: Request, pk: int) -> Response:
        endpoint = webhooks._own(self.actor(request), pk)
        rows = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("pk")[:500]
        return Response(DeliveryOutputSerializer(rows, many=True).data)


class WebhookReplayApi(BaseApi):
    required_scope = "read"

    class InputSerializer(serializers.Serializer):
        after = serializers.IntegerField(min_value=-1, max_value=2**62)

    @extend_schema(
        request=InputSerializer,
        responses={200: EndpointOutputSerializer},
        operation_id="webhooks_replay",
        tags=["webhooks"],
    )
    def post(self, request: Request, pk: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic(durable=True):
            endpoint = webhooks.webhook_replay(
                actor=self.actor(request), endpoint=pk, after=data.validated_data["after"]
            )
        return Response(EndpointOutputSerializer(endpoint).data)


urlpatterns = [
    path("webhooks", WebhooksApi.as_view(), name="webhooks"),
    path("webhooks/<int:pk>", WebhookDetailApi.as_view(), name="webhook"),
    path("webhooks/<int:pk>/deliveries", WebhookDeliveriesApi.as_view(), name="webhook-deliveries"),
    path("webhooks/<int:pk>/replay", WebhookReplayApi.as_view(), name="webhook-replay"),
]
