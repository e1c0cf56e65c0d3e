"""Webhooks: every ledger entry relevant to an organization, POSTed to its endpoints, signed.

Services for webhook endpoints (create, within a cap per organization; deactivate; replay),
the dispatcher that turns new ledger entries into deliveries, the scheduler that gives each
endpoint with deliveries due one sender, and the sender.

One Celery task per delivery, on the queue the auctions and checkpoints used, let 165
endpoints queue 40,500 tasks ahead of an auction's close (issue 14). Now:

* ``webhooks_dispatch`` (kicked after writes; beat every 5 s) writes one pending delivery per
  relevant entry and endpoint, and enqueues nothing per delivery.
* ``webhooks_schedule`` (after each dispatch, and after each sender's turn) takes each active
  endpoint that has a delivery due, whose circuit lets one through and that no sender holds,
  claims its **lease** (a compare-and-set on ``lease_until``, as healthchecks claims work) and
  enqueues one ``webhook_endpoint_send_task`` for it, on the webhooks queue
  (``WEBHOOK_QUEUE``). So that queue holds at most about one task per endpoint with work,
  whatever the backlog of deliveries.
* ``webhook_endpoint_send`` (the task) sends that endpoint's due deliveries in ledger order,
  one HTTP request each, at most ``WEBHOOK_BATCH_SIZE`` of them for at most
  ``WEBHOOK_BATCH_SECONDS``, stopping at the first failure; then it lets the lease go and the
  endpoint is scheduled again, behind the other endpoints' senders. A slow receiver delays
  only its own deliveries.

A lease and not a row lock (``SELECT ... FOR UPDATE SKIP LOCKED``): a row lock lives as long
as its transaction, and a transaction must not stay open across HTTP requests to someone
else's server (on SQLite it would hold the whole database's write lock). The lease is renewed
after every delivery and runs out ``WEBHOOK_LEASE_SECONDS`` after the sender's last sign of
life; a sender lost with its worker or its message is then replaced by the next schedule.
Each delivery is also claimed on its own (a compare-and-set on ``due_at``, ``ledger/claims.py``,
as the mail outbox claims its mails) while it is sent, so two senders never send one delivery
at the same time, even after a lease ran out under a slow send. Delivery is at least once: a
delivery stays pending until a 2xx answer is recorded.

**Circuit breaker.** Each attempt's outcome is counted per endpoint: after
``WEBHOOK_CIRCUIT_FAILURES`` failed attempts in a row the circuit opens and nothing is sent to
the endpoint for ``WEBHOOK_CIRCUIT_COOLDOWN_SECONDS``; then it is half-open and one delivery
probes it: a success closes it (and the backlog is sent), a failure opens it for another
cool-down. Deliveries wait, pending, while it is open (their attempts are not used up), and a
replay closes it. Each delivery's own retries keep their exponential backoff and limit
(``WEBHOOK_RETRY_BASE_SECONDS``, ``WEBHOOK_MAX_ATTEMPTS``).

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
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, OuterRef, Q, Subquery, Value, When
from django.utils import timezone

from . import claims, egress, entry_types, jobs, locks, policy
from .actors import Actor
from .core.entry import decode_entry
from .exceptions import Conflict, ErrorCode, InvalidInput, NotFound
from .models import (
    Account,
    EscrowHold,
    LedgerEntry,
    Project,
    WebhookDelivery,
    WebhookEndpoint,
)

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "BlueCarbon-Signature"
DELIVERY_HEADER = "BlueCarbon-Delivery"
SCAN_BATCH = 1000
# A sender is enqueued for what is due within this long (a retry's backoff, a circuit's
# cool-down), with that countdown; what is due later is left to beat's next schedule.
SCHEDULE_AHEAD = timedelta(seconds=30)
PENDING = WebhookDelivery.Status.PENDING
_pending = WebhookDelivery.objects.filter(status=PENDING)


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


# ---- the circuit ---------------------------------------------------------------------------


class CircuitState(StrEnum):
    CLOSED = "closed"  # deliveries are sent
    OPEN = "open"  # nothing is sent until ``open_until``
    HALF_OPEN = "half_open"  # the cool-down is over: the next delivery probes the endpoint


CIRCUIT_STATES = [s.value for s in CircuitState]  # the API's choices (and schema enum)


@dataclass(frozen=True)
class Circuit:
    state: CircuitState
    consecutive_failures: int
    open_until: datetime | None


def endpoint_circuit(endpoint: WebhookEndpoint, now: datetime | None = None) -> Circuit:
    until = endpoint.circuit_open_until
    if until is None:
        state = CircuitState.CLOSED
    elif (now or timezone.now()) < until:
        state = CircuitState.OPEN
    else:
        state = CircuitState.HALF_OPEN
    return Circuit(state, endpoint.consecutive_failures, until)


def webhooks_backlog(now: datetime) -> tuple[int, dict[str, int]]:
    """For /metrics: deliveries to active endpoints still pending, and active endpoints by the
    state of their circuit. The backlog is in the database, not in a queue's depth."""
    pending = WebhookDelivery.objects.filter(status=PENDING, endpoint__active=True).count()
    states = dict.fromkeys(CIRCUIT_STATES, 0)
    for endpoint in WebhookEndpoint.objects.filter(active=True).only(
        "consecutive_failures", "circuit_open_until"
    ):
        states[endpoint_circuit(endpoint, now).state] += 1
    return pending, states


def _circuit_record(endpoint: WebhookEndpoint, *, ok: bool) -> None:
    """Count an attempt's outcome (``endpoint`` as read before the attempt). One statement
    each, so concurrent outcomes (a sender whose lease ran out, and its successor) are all
    counted."""
    row = WebhookEndpoint.objects.filter(pk=endpoint.pk)
    if ok:
        # No write for a healthy endpoint's every delivery. A failure another sender recorded
        # meanwhile is reset by the next success.
        if endpoint.consecutive_failures or endpoint.circuit_open_until is not None:
            row.update(consecutive_failures=0, circuit_open_until=None)
        return
    cooldown = timedelta(seconds=settings.WEBHOOK_CIRCUIT_COOLDOWN_SECONDS)
    # SET expressions read the row as it was: this failure is the threshold's when the count
    # before it was one less. A failed probe (half-open) opens the circuit again.
    row.update(
        consecutive_failures=F("consecutive_failures") + 1,
        circuit_open_until=Case(
            When(
                consecutive_failures__gte=settings.WEBHOOK_CIRCUIT_FAILURES - 1,
                then=Value(timezone.now() + cooldown),
            ),
            default=F("circuit_open_until"),
        ),
    )


# ---- endpoint services ---------------------------------------------------------------------


@transaction.atomic
def webhook_endpoint_create(
    *, actor: Actor, url: str, event_types: Iterable[str] = ()
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint for the actor's organization; returns it with its signing secret,
    which is shown this once (stored encrypted, never returned again). An organization has at
    most ``WEBHOOK_MAX_ENDPOINTS`` active endpoints."""
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
    # Two registrations at once must not both find room under the cap.
    locks.organization_lock(actor.organization_id)
    limit = settings.WEBHOOK_MAX_ENDPOINTS
    active = WebhookEndpoint.objects.filter(
        organization_id=actor.organization_id, active=True
    ).count()
    if active >= limit:
        raise Conflict(
            f"your organization has {active} active webhook endpoints, the most it may have: "
            "deactivate one (DELETE /webhooks/{id}) before registering another",
            code=ErrorCode.WEBHOOK_ENDPOINT_LIMIT,
            detail={"limit": limit, "active": active},
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
    """One of the actor's endpoints. A deactivated one (``DELETE``) is gone for its owner as
    if it had never been: it, its delivery log and its replay are 404, like another's."""
    endpoint = (
        WebhookEndpoint.objects.filter(pk=endpoint_id).first()
        if isinstance(endpoint_id, int) and 0 < endpoint_id < 2**62
        else None
    )
    if endpoint is None or not policy.webhook_endpoint_visible_to(actor, endpoint):
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return endpoint


def webhook_endpoint_deactivate(*, actor: Actor, endpoint: int) -> WebhookEndpoint:
    ep = _own(actor, endpoint)
    WebhookEndpoint.objects.filter(pk=ep.pk).update(active=False)
    ep.active = False
    return ep


def webhook_replay(*, actor: Actor, endpoint: int, after: int) -> WebhookEndpoint:
    """Deliver again every relevant entry after ``after`` (the feed cursor). Closes the
    endpoint's circuit: a replay says the receiver is ready."""
    ep = _own(actor, endpoint)
    if not isinstance(after, int) or after < -1:
        raise InvalidInput(
            "after must be an entry sequence number or -1", detail={"after": "invalid"}
        )
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=ep.pk).update(
            cursor=min(after, ep.cursor), consecutive_failures=0, circuit_open_until=None
        )
        # Already delivered entries in the range are sent again.
        WebhookDelivery.objects.filter(endpoint=ep, entry_seq__gt=after).update(
            status=PENDING, attempts=0, due_at=timezone.now()
        )
        transaction.on_commit(_dispatch_soon, robust=True)
    ep.refresh_from_db()
    return ep


# ---- dispatch: entries into deliveries -----------------------------------------------------


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
    """Create deliveries for entries past each active endpoint's cursor (pending, due now; the
    scheduler sends them). Safe to run twice or concurrently: endpoints are claimed under row
    locks and deliveries are unique."""
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
                hold_id = entry.data.get("hold")
                hold = EscrowHold.objects.filter(pk=hold_id).first() if hold_id else None
                if hold:
                    accounts.add(hold.account_id)
            owners = {account_org[a] for a in accounts if a in account_org} | orgs
            for p in projects:
                owners |= project_orgs.get(p, set())
            relevant.append((e.seq, entry.type, owners))
        last = entries[-1].seq
        # Each entry finds its endpoints by the organizations it touches: the work is the
        # entries' and their owners', not endpoints x entries (with hundreds of endpoints the
        # dispatch had the webhooks worker competing with the web server for the cores).
        by_org: dict[int, list[WebhookEndpoint]] = {}
        for ep in endpoints:
            by_org.setdefault(ep.organization_id, []).append(ep)
        rows = [
            WebhookDelivery(endpoint=ep, entry_seq=seq)
            for seq, type_, owners in relevant
            for org in owners
            for ep in by_org.get(org, ())
            if seq > ep.cursor and (not ep.event_types or type_ in ep.event_types)
        ]
        WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        WebhookEndpoint.objects.filter(pk__in=[ep.pk for ep in endpoints], cursor__lt=last).update(
            cursor=last
        )
        if rows:
            wanted = {(r.endpoint_id, r.entry_seq) for r in rows}
            found = WebhookDelivery.objects.filter(
                endpoint_id__in={ep_id for ep_id, _ in wanted},
                entry_seq__gte=min(seq for _, seq in wanted),
                entry_seq__lte=last,
                status=WebhookDelivery.Status.PENDING,
            ).values_list("pk", "endpoint_id", "entry_seq")
            created = sorted(pk for pk, ep_id, seq in found if (ep_id, seq) in wanted)
    return created


def _dispatch_soon() -> None:
    jobs.send(jobs.WEBHOOKS_DISPATCH)


# ---- scheduling: one sender per endpoint ---------------------------------------------------


def _lease_free(now: datetime) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def webhooks_schedule(*, endpoints: Iterable[int] | None = None) -> list[int]:
    """Give each active endpoint with a delivery due (within ``SCHEDULE_AHEAD``, its circuit
    allowing) that no sender holds a sender: claim its lease and enqueue
    ``webhook_endpoint_send_task`` after commit, with a countdown to when it is due. Returns
    the endpoints claimed. Safe to run twice or concurrently: a lease is claimed once."""
    now = timezone.now()
    lease = timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    first_due = (
        WebhookDelivery.objects.filter(endpoint=OuterRef("pk"), status=PENDING)
        .order_by("due_at")
        .values("due_at")[:1]
    )
    rows = (
        WebhookEndpoint.objects.filter(_lease_free(now), active=True)
        .annotate(first_due=Subquery(first_due))
        .filter(first_due__isnull=False)
        .order_by("pk")
    )
    if endpoints is not None:
        rows = rows.filter(pk__in=list(endpoints))
    claimed: list[tuple[int, str, float]] = []
    for pk, due, open_until in rows.values_list("pk", "first_due", "circuit_open_until"):
        start = max(due, open_until) if open_until else due
        if start > now + SCHEDULE_AHEAD:
            continue
        token = secrets.token_hex(16)
        if WebhookEndpoint.objects.filter(_lease_free(now), pk=pk, active=True).update(
            lease_token=token, lease_until=max(start, now) + lease
        ):
            claimed.append((pk, token, max(0.0, (start - now).total_seconds())))
    # Robust: a claimed lease whose task was not enqueued runs out, and beat claims it again.
    transaction.on_commit(lambda: _enqueue(claimed), robust=True)
    return [pk for pk, _, _ in claimed]


def _enqueue(claimed: list[tuple[int, str, float]]) -> None:
    for pk, token, countdown in claimed:
        jobs.send(
            jobs.WEBHOOK_ENDPOINT_SEND, pk, token, countdown=countdown if countdown > 0 else None
        )


def _lease_renew(endpoint_id: int, token: str) -> bool:
    """Still ours (nobody claimed it after it ran out): hold it for another lease period."""
    until = timezone.now() + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    return bool(
        WebhookEndpoint.objects.filter(pk=endpoint_id, lease_token=token).update(lease_until=until)
    )


def _lease_release(endpoint_id: int, token: str) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint_id, lease_token=token).update(
        lease_token="", lease_until=None
    )


# ---- sending -------------------------------------------------------------------------------


class Sent(StrEnum):
    DELIVERED = "delivered"  # sent now and acknowledged (2xx)
    # Sent (or refused before sending) now and not acknowledged: due again after its backoff,
    # or given up (status failed) after the last allowed attempt.
    FAILED = "failed"
    # Nothing sent: not pending (delivered, given up, gone), not due yet, or another sender
    # has it claimed.
    NOT_SENT = "not_sent"


def webhook_endpoint_send(*, endpoint: int, token: str) -> int:
    """A sender's turn at one endpoint, holding its lease ``token``: send its due deliveries
    in ledger order, at most WEBHOOK_BATCH_SIZE for at most WEBHOOK_BATCH_SECONDS (one, if
    the circuit is half-open), stopping at the first failure; then let the lease go and
    schedule the endpoint again. Returns how many were delivered. A sender whose lease was
    taken over (it ran out while this task waited or stalled) sends nothing more."""
    if not _lease_renew(endpoint, token):
        return 0
    delivered = 0
    try:
        ep = WebhookEndpoint.objects.filter(pk=endpoint, active=True).first()
        if ep is None:
            return 0
        now = timezone.now()
        circuit = endpoint_circuit(ep, now)
        if circuit.state == CircuitState.OPEN:
            return 0
        size = 1 if circuit.state == CircuitState.HALF_OPEN else settings.WEBHOOK_BATCH_SIZE
        batch = list(
            WebhookDelivery.objects.filter(endpoint=ep, status=PENDING, due_at__lte=now)
            .order_by("entry_seq")
            .values_list("pk", flat=True)[:size]
        )
        ends = time.monotonic() + settings.WEBHOOK_BATCH_SECONDS
        for pk in batch:
            outcome = webhook_deliver(pk)
            if outcome == Sent.FAILED:
                break
            delivered += outcome == Sent.DELIVERED
            if time.monotonic() > ends or not _lease_renew(endpoint, token):
                break
    finally:
        _lease_release(endpoint, token)
        # Its next turn, behind the senders already queued: endpoints take turns.
        webhooks_schedule(endpoints=[endpoint])
    return delivered


def webhook_deliver(delivery_id: int) -> Sent:
    """Send one delivery now, if it is pending and due and nobody else is sending it."""
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != PENDING:
        return Sent.NOT_SENT
    # Claim it until the send must have ended: a second sender (one whose lease ran out and
    # its successor) sends nothing while this one does.
    hold = timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS)
    claim = claims.claim(_pending, delivery.pk, seen=delivery.due_at, hold=hold)
    if claim is None:
        return Sent.NOT_SENT
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
    attempts = delivery.attempts + 1
    gave_up = not ok and attempts >= settings.WEBHOOK_MAX_ATTEMPTS
    if ok:
        outcome: dict[str, Any] = {
            "status": WebhookDelivery.Status.DELIVERED,
            "delivered_at": timezone.now(),
        }
    elif gave_up:
        outcome = {"status": WebhookDelivery.Status.FAILED}
    else:
        outcome = {"due_at": claims.retry_at(attempts, base=settings.WEBHOOK_RETRY_BASE_SECONDS)}
    claims.record(
        _pending,
        delivery.pk,
        claim,
        attempts=attempts,
        last_status_code=status,
        last_error=error,
        **outcome,
    )
    _circuit_record(endpoint, ok=ok)
    if gave_up:
        log.warning("webhook delivery %s gave up after %s attempts", delivery.pk, attempts)
    return Sent.DELIVERED if ok else Sent.FAILED
