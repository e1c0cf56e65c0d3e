"""Webhooks: every ledger entry relevant to an organization, POSTed to its endpoints, signed.

Services for webhook endpoints (create, deactivate, replay), the dispatcher that turns new
ledger entries into deliveries, and the delivery itself. Deliveries are sent by Celery tasks
after commit, retried with exponential backoff, logged per attempt, and sent at most once
successfully (a compare-and-set on the delivery's status). Delivery is at least once: a
delivery whose task was lost (a lost broker message, a killed worker, a database error
mid-task) is found pending past its due time by beat and sent again
(``webhook_deliveries_resend``); a task claims a delivery by a compare-and-set on ``due_at``
before sending, so two tasks never send one delivery at the same time.

Signature (Stripe-style): header ``BlueCarbon-Signature: t=<unix seconds>,v1=<hex>`` where
``v1`` = HMAC-SHA256(secret, "<t>.<raw body>"). Receivers recompute it and reject old ``t``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import secrets
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import egress, entry_types
from .actors import Actor
from .core.entry import decode_entry
from .exceptions import InvalidInput, NotFound
from .models import Account, LedgerEntry, Project, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "BlueCarbon-Signature"
DELIVERY_HEADER = "BlueCarbon-Delivery"
SCAN_BATCH = 1000
RESEND_BATCH = 500
# A retry's task may start this much before the due time its worker computed (clocks of
# several hosts); a claim made earlier than that is another task's.
CLOCK_SKEW = timedelta(seconds=1)


def _fernet() -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"bluecarbon webhook secrets"
    ).derive(settings.SECRET_KEY.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance: int = 300) -> bool:
    """What a receiver does (documented in docs/api.md)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


# ---- endpoint services ---------------------------------------------------------------------


@transaction.atomic
def webhook_endpoint_create(
    *, actor: Actor, url: str, event_types: Iterable[str] = ()
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint for the actor's organization; returns it with its signing secret,
    which is shown this once (stored encrypted, never returned again)."""
    if actor.organization_id is None:
        raise NotFound("you act for no organization")
    parts = urlsplit(url if isinstance(url, str) else "")
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 500:
        raise InvalidInput("url must be an http(s) URL", detail={"url": "invalid"})
    try:
        egress.check(url)
    except egress.Unresolvable:
        pass  # reaches nothing now; every delivery resolves and checks it again
    except egress.Refused as exc:
        raise InvalidInput(
            f"url must name a public address: {exc}", detail={"url": "not_public"}
        ) from None
    types = sorted(set(event_types))
    unknown = set(types) - entry_types.all_types()
    if unknown:
        raise InvalidInput(
            f"unknown event types: {', '.join(sorted(unknown))}",
            detail={"event_types": "invalid_choice"},
        )
    secret = "whsec_" + secrets.token_urlsafe(32)
    head = LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first()
    endpoint = WebhookEndpoint.objects.create(
        organization_id=actor.organization_id,
        url=url,
        secret_encrypted=_fernet().encrypt(secret.encode()),
        event_types=types,
        cursor=head if head is not None else -1,  # from now on; replay reaches back
    )
    return endpoint, secret


def _own(actor: Actor, endpoint_id: object) -> WebhookEndpoint:
    endpoint = (
        WebhookEndpoint.objects.filter(pk=endpoint_id).first()
        if isinstance(endpoint_id, int) and 0 < endpoint_id < 2**62
        else None
    )
    if endpoint is None or not actor.may_act_for(endpoint.organization_id):
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return endpoint


def webhook_endpoint_deactivate(*, actor: Actor, endpoint: int) -> WebhookEndpoint:
    ep = _own(actor, endpoint)
    WebhookEndpoint.objects.filter(pk=ep.pk).update(active=False)
    ep.active = False
    return ep


def webhook_replay(*, actor: Actor, endpoint: int, after: int) -> WebhookEndpoint:
    """Deliver again every relevant entry after ``after`` (the feed cursor)."""
    ep = _own(actor, endpoint)
    if not isinstance(after, int) or after < -1:
        raise InvalidInput(
            "after must be an entry sequence number or -1", detail={"after": "invalid"}
        )
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=ep.pk).update(cursor=min(after, ep.cursor))
        # Already delivered entries in the range are sent again.
        WebhookDelivery.objects.filter(endpoint=ep, entry_seq__gt=after).update(
            status=WebhookDelivery.Status.PENDING, attempts=0, due_at=timezone.now()
        )
        pending = list(
            WebhookDelivery.objects.filter(endpoint=ep, entry_seq__gt=after).values_list(
                "pk", flat=True
            )
        )
        transaction.on_commit(lambda: _enqueue(pending))
    ep.refresh_from_db()
    return ep


# ---- dispatch ------------------------------------------------------------------------------


def _touches(data: dict[str, Any]) -> tuple[set[int], set[int], set[int]]:
    """Accounts, projects and organizations an entry's data refers to."""
    accounts: set[int] = set()
    projects: set[int] = set()
    orgs: set[int] = set()

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, int) and not isinstance(node, bool):
            if key in ("from", "to", "account", "holder", "buffer_account"):
                accounts.add(node)
            elif key == "project":
                projects.add(node)
            elif key in ("organization", "registry", "developer"):
                orgs.add(node)

    walk(data)
    if "organization" in data and isinstance(data["organization"], dict):
        orgs.add(data["organization"]["id"])
    return accounts, projects, orgs


def webhooks_dispatch() -> list[int]:
    """Create deliveries for entries past each active endpoint's cursor. Safe to run twice or
    concurrently: endpoints are claimed under row locks and deliveries are unique."""
    created: list[int] = []
    with transaction.atomic():
        endpoints = list(
            WebhookEndpoint.objects.select_for_update().filter(active=True).order_by("pk")
        )
        if not endpoints:
            return created
        low = min(ep.cursor for ep in endpoints)
        entries = list(LedgerEntry.objects.filter(seq__gt=low).order_by("seq")[:SCAN_BATCH])
        if not entries:
            return created
        account_org = dict(Account.objects.values_list("pk", "organization_id"))
        project_orgs = {
            pk: {reg, dev}
            for pk, reg, dev in Project.objects.values_list("pk", "registry_id", "developer_id")
        }
        relevant: list[tuple[int, str, set[int]]] = []
        for e in entries:
            entry = decode_entry(bytes(e.body))
            accounts, projects, orgs = _touches(entry.data)
            if entry.type == "escrow.release" or entry.type == "escrow.deliver":
                from .models import EscrowHold

                hold_id = entry.data.get("hold")
                hold = EscrowHold.objects.filter(pk=hold_id).first() if hold_id else None
                if hold:
                    accounts.add(hold.account_id)
            owners = {account_org[a] for a in accounts if a in account_org} | orgs
            for p in projects:
                owners |= project_orgs.get(p, set())
            relevant.append((e.seq, entry.type, owners))
        last = entries[-1].seq
        for ep in endpoints:
            rows = [
                WebhookDelivery(endpoint=ep, entry_seq=seq)
                for seq, type_, owners in relevant
                if seq > ep.cursor
                and ep.organization_id in owners
                and (not ep.event_types or type_ in ep.event_types)
            ]
            WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
            WebhookEndpoint.objects.filter(pk=ep.pk).update(cursor=max(ep.cursor, last))
            if rows:
                created += list(
                    WebhookDelivery.objects.filter(
                        endpoint=ep,
                        entry_seq__in=[r.entry_seq for r in rows],
                        status=WebhookDelivery.Status.PENDING,
                    ).values_list("pk", flat=True)
                )
        transaction.on_commit(lambda: _enqueue(created))
    return created


def _enqueue(ids: list[int]) -> None:
    from .tasks import webhook_deliver_task

    for pk in ids:
        webhook_deliver_task.delay(pk)


# ---- delivery ------------------------------------------------------------------------------


def webhook_deliveries_resend() -> list[int]:
    """Beat: enqueue again the pending deliveries no task will send (due longer ago than
    WEBHOOK_STALE_SECONDS). Each is claimed by a compare-and-set on its due time, so two runs
    (or a run racing a late task) enqueue it once."""
    now = timezone.now()
    stale = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING,
        due_at__lt=now - timedelta(seconds=settings.WEBHOOK_STALE_SECONDS),
        endpoint__active=True,
    ).order_by("due_at", "pk")
    claimed = [
        pk
        for pk, due_at in stale.values_list("pk", "due_at")[:RESEND_BATCH]
        if WebhookDelivery.objects.filter(
            pk=pk, status=WebhookDelivery.Status.PENDING, due_at=due_at
        ).update(due_at=now)
    ]
    if claimed:
        log.warning("webhook deliveries %s had no task left: sent again", claimed)
    _enqueue(claimed)
    return claimed


class DeliveryFailed(Exception):
    """Not delivered this time; the task retries after ``countdown`` seconds."""

    def __init__(self, message: str, countdown: float) -> None:
        super().__init__(message)
        self.countdown = countdown


def webhook_deliver(delivery_id: int) -> bool:
    """Send one delivery. True once delivered (now or before); raises DeliveryFailed to retry.
    False without sending while another task has it (sending it, or its retry not yet due)."""
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return delivery is not None and delivery.status == WebhookDelivery.Status.DELIVERED
    # Claim it until the send must have ended (compare-and-set): a duplicate task (beat's
    # resend of a late one, a redelivered message) sends nothing while this one does.
    now = timezone.now()
    claim = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS)
    if not WebhookDelivery.objects.filter(
        pk=delivery.pk,
        status=WebhookDelivery.Status.PENDING,
        due_at=delivery.due_at,
        due_at__lte=now + CLOCK_SKEW,
    ).update(due_at=claim):
        return False
    endpoint = delivery.endpoint
    entry = LedgerEntry.objects.get(seq=delivery.entry_seq)
    raw = bytes(entry.body)
    body = json.dumps(
        {
            "id": delivery.pk,
            "type": entry.type,
            "seq": entry.seq,
            "time": decode_entry(raw).time,
            "canonical": raw.decode(),
            "entry_sha256": hashlib.sha256(raw).hexdigest(),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    secret = _fernet().decrypt(bytes(endpoint.secret_encrypted)).decode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, int(time.time()), body),
        DELIVERY_HEADER: str(delivery.pk),
    }
    status: int | None = None
    error = ""
    try:
        # Resolved and checked again now (DNS may have changed since registration), sent to
        # the checked address, no redirect followed: ledger/egress.py.
        status = egress.post(endpoint.url, body, headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS)
    except egress.Refused as exc:
        error = f"refused, nothing sent: {exc}"[:500]
    except (OSError, http.client.HTTPException) as exc:
        error = (str(exc) or type(exc).__name__)[:500]
    if status is not None and 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed"
    elif status is not None and not 200 <= status < 300:
        error = f"HTTP {status}"
    ok = status is not None and 200 <= status < 300
    countdown = min(settings.WEBHOOK_RETRY_BASE_SECONDS * 2**delivery.attempts, 3600.0)
    # Compare-and-set on the claim: a task that took over after this one's claim ran out
    # records its own attempt, not this one's too.
    updated = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=WebhookDelivery.Status.PENDING, due_at=claim
    ).update(
        attempts=delivery.attempts + 1,
        last_status_code=status,
        last_error=error,
        **(
            {"status": WebhookDelivery.Status.DELIVERED, "delivered_at": timezone.now()}
            if ok
            else {"due_at": timezone.now() + timedelta(seconds=countdown)}
        ),
    )
    if ok or not updated:
        return ok
    if delivery.attempts + 1 >= settings.WEBHOOK_MAX_ATTEMPTS:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.Status.FAILED)
        log.warning(
            "webhook delivery %s gave up after %s attempts", delivery.pk, delivery.attempts + 1
        )
        return False
    raise DeliveryFailed(error or f"HTTP {status}", countdown)
