"""``/metrics``: the registry's operational state in the Prometheus text exposition format
(version 0.0.4), written by hand: a few gauges and one histogram do not need a library.

Request latency is kept by ``RequestLatencyMiddleware`` in the memory of each web process, since
it started, and exported with a ``pid`` label: a scrape answered by one of several processes
shows that process's histogram only (docs/operations.md says how to read it).

Access: from loopback without a forwarding header, or with ``Authorization: Bearer
<METRICS_TOKEN>``. A proxy on the same host makes every request arrive from loopback, which is
why a request carrying a forwarding header is not taken for a local one.
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from celery import current_app
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from kombu.exceptions import ChannelError

from . import operations, webhooks

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. Django's own pages answer in milliseconds; an auction close or a bulk import of a
# thousand operations takes seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Headers a proxy adds: a request carrying one came through a proxy, whatever its address.
FORWARDING_HEADERS = (
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REAL_IP",
)


# ---- the text format -----------------------------------------------------------------------


def _value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(float(v))


def _label(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _help(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


class Exposition:
    """Metric families, each with its HELP and TYPE lines and then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        self.lines.append(
            f"{name}{{{text}}} {_value(value)}" if text else f"{name} {_value(value)}"
        )

    def gauge(self, name: str, help_text: str, value: float | None = None, **labels: str) -> None:
        self.family(name, "gauge", help_text)
        if value is not None:
            self.sample(name, value, **labels)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


# ---- request latency, per process ----------------------------------------------------------


class Histogram:
    """Cumulative buckets per label set; one lock, held for an increment."""

    def __init__(self, buckets: Iterable[float]) -> None:
        self.buckets = tuple(sorted(buckets))
        self._lock = threading.Lock()
        # labels -> [count per bucket (not yet cumulative) ..., +Inf, sum]
        self._series: dict[tuple[tuple[str, str], ...], list[float]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        slot = len(self.buckets)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                slot = i
                break
        with self._lock:
            series = self._series.setdefault(key, [0.0] * (len(self.buckets) + 2))
            series[slot] += 1
            series[-1] += value

    def expose(self, out: Exposition, name: str, help_text: str, **extra: str) -> None:
        out.family(name, "histogram", help_text)
        with self._lock:
            snapshot = {k: list(v) for k, v in self._series.items()}
        for key, series in sorted(snapshot.items()):
            labels = {**dict(key), **extra}
            running = 0.0
            for bound, n in zip((*self.buckets, math.inf), series[:-1], strict=True):
                running += n
                out.sample(f"{name}_bucket", running, **labels, le=_value(bound))
            out.sample(f"{name}_sum", series[-1], **labels)
            out.sample(f"{name}_count", running, **labels)

    def reset(self) -> None:
        with self._lock:
            self._series.clear()


REQUEST_LATENCY = Histogram(LATENCY_BUCKETS)


def _area(path: str) -> str | None:
    """A few areas, not one series per URL: the label set stays small."""
    if path == "/metrics":
        return None  # the scrape itself
    for prefix, area in (
        ("/api/", "api"),
        ("/admin/", "admin"),
        ("/static/", "static"),
        ("/healthz", "health"),
    ):
        if path.startswith(prefix):
            return area
    return "portal"


class RequestLatencyMiddleware:
    """Time from the request reaching Django to the response leaving it (a streamed body is
    not included), by area and status class. First in ``MIDDLEWARE``: it times the others."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        area = _area(request.path)
        if area is not None:
            REQUEST_LATENCY.observe(
                time.perf_counter() - started, area=area, status=f"{response.status_code // 100}xx"
            )
        return response


# ---- access --------------------------------------------------------------------------------


def allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
            return True
    if any(h in request.META for h in FORWARDING_HEADERS):
        return False
    extra = getattr(settings, "RATELIMIT_IP_META_KEY", None)  # the proxy's client-address header
    if isinstance(extra, str) and extra in request.META:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


# ---- queue depths --------------------------------------------------------------------------


def queue_depths(queues: list[str]) -> dict[str, int] | None:
    """Messages waiting in each queue, as the broker counts them: LLEN over the queue's
    priority lists on Redis, message files on the embedded file-system broker. None when the
    broker cannot be reached. A message a worker has taken (and not yet acknowledged) is not
    waiting any more and is not counted."""
    depths: dict[str, int] = {}
    try:
        with current_app.connection_for_read(
            connect_timeout=2,
            transport_options={"socket_timeout": 2, "socket_connect_timeout": 2},
        ) as conn:
            conn.ensure_connection(max_retries=1)
            for queue in queues:
                channel: Any = conn.channel()  # a virtual transport's Channel
                try:
                    # A passive declare creates nothing; a queue the broker does not know is
                    # an empty one (Redis drops a list when its last message is taken).
                    depths[queue] = int(channel.queue_declare(queue, passive=True).message_count)
                except ChannelError:
                    depths[queue] = 0
                finally:
                    channel.close()
    except Exception:
        log.warning("metrics: the broker could not be asked for queue depths", exc_info=True)
        return None
    return depths


# ---- the page ------------------------------------------------------------------------------


def render() -> str:
    out = Exposition()
    now = timezone.now()
    pid = str(os.getpid())
    up = operations.database_reachable()
    out.gauge("bluecarbon_database_up", "1 if the database answered a query", 1 if up else 0)
    if up:
        _ledger(out, now)
    queues = operations.worker_queues()
    depths = queue_depths(queues)
    out.gauge(
        "bluecarbon_celery_broker_up", "1 if the Celery broker answered", int(depths is not None)
    )
    out.gauge(
        "bluecarbon_celery_queue_messages",
        "Messages waiting in a Celery queue (taken but unacknowledged ones not included)",
    )
    for queue, depth in sorted((depths or {}).items()):
        out.sample("bluecarbon_celery_queue_messages", depth, queue=queue)
    REQUEST_LATENCY.expose(
        out,
        "bluecarbon_http_request_duration_seconds",
        "Time Django took to answer, by area and status class, in this web process since it "
        "started (pid)",
        pid=pid,
    )
    return out.text()


def _ledger(out: Exposition, now: dt.datetime) -> None:
    health = operations.health_check(now)
    out.gauge("bluecarbon_healthy", "1 if every /healthz check passes", int(health.ok))
    out.gauge("bluecarbon_health_check_ok", "1 if this /healthz check passes")
    for name, check in health.checks.items():
        out.sample("bluecarbon_health_check_ok", int(check.ok), check=name)

    c = operations.checkpoint_status(now)
    out.gauge("bluecarbon_ledger_entries", "Entries in the ledger", c.ledger_size)
    out.gauge(
        "bluecarbon_checkpoint_size", "Size of the latest signed checkpoint", c.checkpoint_size
    )
    out.gauge(
        "bluecarbon_checkpoint_lag_entries",
        "Entries no signed checkpoint covers yet",
        c.lag_entries,
    )
    out.gauge(
        "bluecarbon_checkpoint_lag_seconds",
        "How long the oldest entry no checkpoint covers has waited (0: all covered)",
        c.lag_seconds,
    )
    out.gauge(
        "bluecarbon_checkpoint_age_seconds",
        "Seconds since the latest checkpoint was signed (an idle ledger's grows; see lag)",
        (now - c.checkpoint_at).total_seconds() if c.checkpoint_at else None,
    )

    s = operations.signer_status()
    out.gauge(
        "bluecarbon_signer_alarms_unacknowledged",
        "Checkpoint signer refusals no operator has acknowledged",
        s.unacknowledged,
    )
    out.family("bluecarbon_signer_alarms_total", "counter", "Checkpoint signer refusals recorded")
    out.sample("bluecarbon_signer_alarms_total", s.total)

    w = operations.witness_status(now)
    out.gauge(
        "bluecarbon_witness_policy_configured",
        "1 if a witness policy is configured (-1: its file cannot be read)",
        -1 if w.error else int(w.configured),
    )
    if w.configured and not w.error:
        out.gauge(
            "bluecarbon_witness_cosignatures",
            "Valid cosignatures of the latest checkpoint by the policy's witnesses",
            len(w.latest_cosigners),
        )
        out.gauge("bluecarbon_witness_cosigned", "1 if this witness cosigned the latest checkpoint")
        for name in w.witnesses:
            out.sample("bluecarbon_witness_cosigned", int(name in w.latest_cosigners), witness=name)
        out.gauge(
            "bluecarbon_witness_quorum_met",
            "1 if the latest checkpoint meets the witness policy's quorum",
            int(bool(w.latest_quorum_met)) if w.latest_size is not None else None,
        )
        out.gauge(
            "bluecarbon_witness_lag_seconds",
            "How long the oldest checkpoint after the newest one meeting the quorum has waited",
            w.lag_seconds,
        )
        out.gauge(
            "bluecarbon_witness_refusals_standing",
            "Refusals by this witness that it has not since overtaken by a cosignature",
        )
        for name in w.witnesses:
            out.sample(
                "bluecarbon_witness_refusals_standing",
                w.refusals.get(name, (0, 0))[0],
                witness=name,
            )

    beats = operations.queue_heartbeats(now)
    out.gauge(
        "bluecarbon_queue_heartbeat_age_seconds",
        "Seconds since any worker ran the heartbeat sent to this queue (+Inf: never)",
    )
    for b in beats:
        age = math.inf if b.seconds_since is None else b.seconds_since
        out.sample("bluecarbon_queue_heartbeat_age_seconds", age, queue=b.queue)
    out.gauge(
        "bluecarbon_worker_heartbeat_age_seconds",
        "Seconds since this worker last ran the heartbeat sent to this queue",
    )
    for b in beats:
        for worker, age in sorted(b.workers.items()):
            out.sample("bluecarbon_worker_heartbeat_age_seconds", age, queue=b.queue, worker=worker)

    pending, circuits = webhooks.webhooks_backlog(now)
    out.gauge(
        "bluecarbon_webhook_deliveries_pending",
        "Webhook deliveries to active endpoints not yet delivered (nor given up)",
        pending,
    )
    out.gauge("bluecarbon_webhook_endpoints", "Active webhook endpoints by their circuit's state")
    for state, count in circuits.items():
        out.sample("bluecarbon_webhook_endpoints", count, circuit=state)
