"""Webhook endpoints: register (the signing secret is shown once), list, deactivate (which
deletes the endpoint for its owner: it, its delivery log and its replay answer 404 afterwards),
the delivery log (a page, like every list), and replay from a feed cursor."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from .. import entry_types, policy, webhooks
from ..models import WebhookDelivery, WebhookEndpoint
from .base import ID_PARAM, MAX_ID, BaseApi, Body, PageSerializer, page, page_of, path_id, query
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


# A webhook URL as the schema states it: an http(s) URL naming its host by a DNS name (at most
# four labels of at most 63 characters, the last of letters: at most 253 characters), an
# optional port, then RFC 3986's characters. The API also takes what Django's URL rule takes
# beyond that (an IP literal, localhost, more labels), and refuses non-public addresses when it
# resolves the host (400 not_public): neither can a pattern say.
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = "(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_USER = "[A-Za-z0-9._~!$&'()*+,;=%-]"
_AFTER_HOST = "[A-Za-z0-9._~!$&'()*+,;=:@/?#%-]"  # RFC 3986's unreserved, reserved and %
_ASCII_URL = re.compile(f"\\A[A-Za-z][A-Za-z0-9+.-]*://[^/?#\\s]+(?:[/?#]{_AFTER_HOST}*)?\\Z")


@extend_schema_field(
    {
        "type": "string",
        "maxLength": 500,
        "pattern": f"^https?://(?:{_USER}+(?::{_USER}*)?@)?(?:{_LABEL}\\.){{1,3}}[A-Za-z]{{2,61}}"
        f"(?::{_PORT})?(?:[/?#]{_AFTER_HOST}*)?$",
        "example": "https://registry.example/hooks/bluecarbon",
        "description": "an http(s) URL whose host is public; after the host only RFC 3986's "
        "characters (escape others: %20)",
    }
)
class WebhookUrlField(serializers.CharField):
    """Django's URL rule, with only RFC 3986's ASCII characters after the host (a delivery's
    request line carries the URL as it is), and the service's: http(s), a public address (at
    registration and at every delivery). Validated here, not by DRF's URLField, whose
    validator would add a "format: uri" to the schema that this pattern states more exactly."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=500, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        try:
            URLValidator()(value)
        except DjangoValidationError:
            raise serializers.ValidationError("Enter a valid URL.", code="invalid") from None
        if not _ASCII_URL.match(value):
            raise serializers.ValidationError(
                "after its host a URL holds only RFC 3986 characters (escape the others: %20)",
                code="invalid",
            )
        return value


class WebhooksApi(BaseApi):
    """Deliveries carry only entries the organization may read, so the read scope suffices."""

    required_scope = "read"

    class InputSerializer(Body):
        url = WebhookUrlField()
        event_types = serializers.ListField(
            child=serializers.ChoiceField(choices=sorted(entry_types.all_types())),
            required=False,
            default=list,
        )

    class CreatedSerializer(EndpointOutputSerializer):
        secret = serializers.CharField(help_text="shown once; sign-verification key")

    @extend_schema(
        request=InputSerializer,
        responses=_responses({201: CreatedSerializer}, 404, 409),
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
        description="The caller's organization's endpoints (deactivated ones are gone), by id.",
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request)
        rows = policy.webhook_endpoints_of(actor)
        return Response(EndpointOutputSerializer(rows.order_by("pk"), many=True).data)


class WebhookDetailApi(BaseApi):
    required_scope = "read"

    @extend_schema(
        parameters=ID_PARAM,
        responses={200: EndpointOutputSerializer},
        operation_id="webhooks_delete",
        tags=["webhooks"],
        description="Deactivate an endpoint: nothing more is sent to it, and it is gone for "
        "its owner (this, its delivery log and its replay then answer 404). The answer is "
        "its last representation.",
    )
    def delete(self, request: Request, pk: str) -> Response:
        endpoint = webhooks.webhook_endpoint_deactivate(
            actor=self.actor(request), endpoint=path_id(pk, "webhook endpoint")
        )
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

    class FilterSerializer(PageSerializer):
        pass

    @extend_schema(
        parameters=[*ID_PARAM, FilterSerializer],
        responses={200: page_of("DeliveryPage", DeliveryOutputSerializer)},
        operation_id="webhooks_deliveries",
        tags=["webhooks"],
        description="The endpoint's delivery log, by id (a page: ?after=<id>&limit=<1..500>).",
    )
    def get(self, request: Request, pk: str) -> Response:
        endpoint = webhooks._own(self.actor(request), path_id(pk, "webhook endpoint"))
        params = query(self.FilterSerializer, request)
        return page(
            WebhookDelivery.objects.filter(endpoint=endpoint), params, DeliveryOutputSerializer
        )


class WebhookReplayApi(BaseApi):
    required_scope = "read"
    takes_idempotency_key = False  # setting the cursor twice is setting it once

    class InputSerializer(Body):
        after = serializers.IntegerField(
            min_value=-1, max_value=MAX_ID, help_text="deliver every entry after this seq again"
        )

    @extend_schema(
        parameters=ID_PARAM,
        request=InputSerializer,
        responses={200: EndpointOutputSerializer},
        operation_id="webhooks_replay",
        tags=["webhooks"],
    )
    def post(self, request: Request, pk: str) -> Response:
        endpoint_id = path_id(pk, "webhook endpoint")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic(durable=True):
            endpoint = webhooks.webhook_replay(
                actor=self.actor(request), endpoint=endpoint_id, after=data.validated_data["after"]
            )
        return Response(EndpointOutputSerializer(endpoint).data)


# <str:pk>, not <int:pk>: a non-integer id must get the API's JSON 404 (path_id).
urlpatterns = [
    path("webhooks", WebhooksApi.as_view(), name="webhooks"),
    path("webhooks/<str:pk>", WebhookDetailApi.as_view(), name="webhook"),
    path("webhooks/<str:pk>/deliveries", WebhookDeliveriesApi.as_view(), name="webhook-deliveries"),
    path("webhooks/<str:pk>/replay", WebhookReplayApi.as_view(), name="webhook-replay"),
]
