"""``GET /metrics``: the Prometheus text exposition format (0.0.4), every line checked against
it; what each metric says against the database and the broker; and who may read it (loopback
without a proxy's forwarding header, or the bearer token)."""

from __future__ import annotations

import math
import os
import re
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from kombu import Exchange, Queue

from bluecarbon.celery import app as celery_app
from ledger import metrics, operations, services, witnesses
from ledger.models import LedgerEntry
from tests.ledger.test_health import (
    _transfer,
    heartbeats_on_every_queue,
    misconfigured_witness,  # noqa: F401 (a fixture)
    signer_refuses,
)

# ---- the exposition format, checked line by line -------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
VALUE = r"[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|Inf)|NaN"
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? ({VALUE})(?: -?[0-9]+)?$")
HELP = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Series:
    """Every line is a HELP, a TYPE or a sample of the family declared last; a family is
    declared once, before its samples; a series appears once; histogram buckets are
    cumulative, end at +Inf and agree with _count. Returns the samples."""
    assert text.endswith("\n") and "\n\n" not in text
    types: dict[str, str] = {}
    helped: set[str] = set()
    current = None
    out: Series = {}
    for line in text[:-1].split("\n"):
        if m := HELP.match(line):
            assert m[1] not in helped, f"second HELP: {line}"
            helped.add(m[1])
            current = m[1]
            continue
        if m := TYPE.match(line):
            assert m[1] not in types, f"second TYPE: {line}"
            types[m[1]] = m[2]
            current = m[1]
            continue
        assert not line.startswith("#"), f"not a HELP or TYPE line: {line!r}"
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels_text, value = m[1], m[2] or "", m[3]
        family = name
        for suffix in SUFFIXES.get(types.get(current or "", ""), ()):
            if name == f"{current}{suffix}":
                family = current
        assert family == current and family in types, f"sample outside its family: {line}"
        labels = tuple(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels_text))
        assert len({k for k, _ in labels}) == len(labels), f"a label twice: {line}"
        key = (name, labels)
        assert key not in out, f"a series twice: {line}"
        out[key] = float(value.replace("Inf", "inf"))
    for family, kind in types.items():
        if kind == "histogram":
            _check_histogram(family, out)
    return out


def _check_histogram(family: str, series: Series) -> None:
    groups: dict[tuple, list[tuple[float, float]]] = {}
    for (name, labels), value in series.items():
        if name == f"{family}_bucket":
            rest = tuple(kv for kv in labels if kv[0] != "le")
            le = dict(labels)["le"]
            groups.setdefault(rest, []).append((float(le.replace("Inf", "inf")), value))
    for rest, buckets in groups.items():
        bounds = [b for b, _ in buckets]
        assert bounds == sorted(bounds) and bounds[-1] == math.inf
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), "buckets are cumulative"
        assert series[(f"{family}_count", rest)] == counts[-1]
        assert (f"{family}_sum", rest) in series


def value(series: Series, name: str, **labels: str) -> float:
    matches = [v for (n, ls), v in series.items() if n == name and dict(ls) == labels]
    assert len(matches) == 1, (name, labels, [k for k in series if k[0] == name])
    return matches[0]


def scrape(**extra) -> Series:
    r = Client().get("/metrics", **extra)
    assert r.status_code == 200, r.content
    assert r["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(r.content.decode())


def test_the_format_checker_itself_refuses_what_is_not_the_format():
    for bad in [
        "a 1",  # no trailing newline
        '# TYPE a gauge\na{b="c} 1\n',
        "# TYPE a gauge\na 1\na 1\n",
        "a 1\n",  # no TYPE
        "# TYPE a gauge\n# TYPE b gauge\na 1\n",  # interleaved
        "# TYPE a gauge\na one\n",
        '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 1\n',
    ]:
        with pytest.raises(AssertionError):
            parse(bad)
    parse('# HELP a x \\\\ y\n# TYPE a gauge\na{b="q\\"\\n\\\\"} +Inf\n')


def test_the_exposition_escapes_label_values_and_help_text():
    out = metrics.Exposition()
    out.gauge("x_metric", "a help\\text\nover two lines", 1.5, queue='a"b\\c\nd')
    out.gauge("y_metric", "no sample")
    series = parse(out.text())
    assert series == {("x_metric", (("queue", 'a\\"b\\\\c\\nd'),)): 1.5}


# ---- what it says --------------------------------------------------------------------------


@pytest.fixture
def ledger(world):
    world.batch = world.issue(1_000_000)
    _transfer(world, world.batch)
    services.ledger_checkpoint_issue()
    return world


def test_it_reports_the_ledger_the_checkpoint_and_its_lag(ledger):
    size = LedgerEntry.objects.count()
    s = scrape()
    assert value(s, "bluecarbon_database_up") == 1
    assert value(s, "bluecarbon_ledger_entries") == size
    assert value(s, "bluecarbon_checkpoint_size") == size
    assert value(s, "bluecarbon_checkpoint_lag_entries") == 0
    assert value(s, "bluecarbon_checkpoint_lag_seconds") == 0
    assert value(s, "bluecarbon_checkpoint_age_seconds") >= 0
    assert value(s, "bluecarbon_signer_alarms_unacknowledged") == 0
    assert value(s, "bluecarbon_witness_policy_configured") == 0

    _transfer(ledger, ledger.batch)
    s = scrape()
    assert value(s, "bluecarbon_ledger_entries") == size + 1
    assert value(s, "bluecarbon_checkpoint_lag_entries") == 1
    assert value(s, "bluecarbon_checkpoint_lag_seconds") > 0


def test_it_reports_signer_alarms_and_the_health_checks(ledger, settings):
    heartbeats_on_every_queue()
    s = scrape()
    assert value(s, "bluecarbon_healthy") == 1
    signer_refuses(settings)
    s = scrape()
    assert value(s, "bluecarbon_signer_alarms_unacknowledged") == 1
    assert value(s, "bluecarbon_signer_alarms_total") == 1
    assert value(s, "bluecarbon_healthy") == 0
    assert value(s, "bluecarbon_health_check_ok", check="signer") == 0
    assert value(s, "bluecarbon_health_check_ok", check="database") == 1


def test_it_reports_the_witnesses_of_the_latest_checkpoint(ledger, misconfigured_witness):  # noqa: F811
    witnesses.checkpoint_witness()  # refused
    s = scrape()
    assert value(s, "bluecarbon_witness_policy_configured") == 1
    assert value(s, "bluecarbon_witness_cosignatures") == 0
    assert value(s, "bluecarbon_witness_cosigned", witness="w1") == 0
    assert value(s, "bluecarbon_witness_quorum_met") == 0
    assert value(s, "bluecarbon_witness_refusals_standing", witness="w1") == 1

    misconfigured_witness.fix()
    witnesses.checkpoint_witness()
    s = scrape()
    assert value(s, "bluecarbon_witness_cosignatures") == 1
    assert value(s, "bluecarbon_witness_cosigned", witness="w1") == 1
    assert value(s, "bluecarbon_witness_quorum_met") == 1
    assert value(s, "bluecarbon_witness_lag_seconds") == 0
    assert value(s, "bluecarbon_witness_refusals_standing", witness="w1") == 0


def test_it_reports_heartbeat_ages_per_queue_and_worker(db, settings):
    settings.WORKER_QUEUES = ["bluecarbon", "witness"]
    operations.worker_heartbeat_record(queue="bluecarbon", worker="celery@a")
    s = scrape()
    assert 0 <= value(s, "bluecarbon_queue_heartbeat_age_seconds", queue="bluecarbon") < 5
    assert value(s, "bluecarbon_queue_heartbeat_age_seconds", queue="witness") == math.inf
    age = value(s, "bluecarbon_worker_heartbeat_age_seconds", queue="bluecarbon", worker="celery@a")
    assert 0 <= age < 5


def test_it_counts_the_messages_waiting_in_each_queue_on_the_broker(db, settings):
    """Three messages to a queue no worker takes: Redis counts them with LLEN, the embedded
    broker as files in its queue folder."""
    queue = f"h7-depth-{uuid.uuid4().hex[:8]}"
    settings.WORKER_QUEUES = [queue]
    assert value(scrape(), "bluecarbon_celery_queue_messages", queue=queue) == 0
    try:
        for _ in range(3):
            celery_app.send_task("ledger.tasks.worker_heartbeat_task", args=(queue,), queue=queue)
        s = scrape()
        assert value(s, "bluecarbon_celery_broker_up") == 1
        assert value(s, "bluecarbon_celery_queue_messages", queue=queue) == 3
    finally:
        with celery_app.connection_for_write() as conn:
            # Declared here, so that this channel knows the binding it deletes (Redis).
            bound = Queue(queue, Exchange(queue), routing_key=queue)(conn.default_channel)
            bound.declare()
            bound.purge()
            bound.delete()
    assert value(scrape(), "bluecarbon_celery_queue_messages", queue=queue) == 0


def test_an_unreachable_broker_is_reported_not_a_failure(db, settings, monkeypatch):
    monkeypatch.setattr(metrics, "queue_depths", lambda queues: None)
    s = scrape()
    assert value(s, "bluecarbon_celery_broker_up") == 0
    assert not [k for k in s if k[0] == "bluecarbon_celery_queue_messages"]


def test_request_latency_is_a_histogram_per_process_and_area(db):
    metrics.REQUEST_LATENCY.reset()
    Client().get("/registry/projects/")
    Client().get("/api/v1/ledger/checkpoints")
    Client().get("/metrics")  # the scrape does not time itself
    s = scrape()
    pid = str(os.getpid())
    name = "bluecarbon_http_request_duration_seconds"
    assert value(s, f"{name}_count", area="portal", status="2xx", pid=pid) == 1
    assert value(s, f"{name}_count", area="api", status="2xx", pid=pid) == 1
    assert not [k for k in s if dict(k[1]).get("area") == "metrics"]
    assert value(s, f"{name}_bucket", area="portal", status="2xx", pid=pid, le="+Inf") == 1
    assert value(s, f"{name}_sum", area="portal", status="2xx", pid=pid) > 0


# ---- who may read it -----------------------------------------------------------------------


def test_it_is_served_to_loopback_only_without_the_token(db, settings):
    settings.METRICS_TOKEN = ""
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="203.0.113.7").get("/metrics").status_code == 403
    assert Client(REMOTE_ADDR="10.0.0.5").get("/metrics").status_code == 403
    # A proxy on the same host: the request comes from loopback but is not a local one.
    proxied = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert proxied.get("/metrics").status_code == 403
    assert (
        Client(REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="203.0.113.7").get("/metrics").status_code
        == 403
    )
    # /healthz is for anyone.
    assert Client(REMOTE_ADDR="203.0.113.7").get("/healthz").status_code in (200, 503)


def test_anyone_with_the_bearer_token_may_read_it(db, settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    remote = Client(REMOTE_ADDR="203.0.113.7")
    assert remote.get("/metrics").status_code == 403
    assert remote.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert (
        remote.get("/metrics", HTTP_AUTHORIZATION="Basic s3cret-metrics-token").status_code == 403
    )
    r = remote.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")
    assert r.status_code == 200
    parse(r.content.decode())
    assert "s3cret" not in r.content.decode()


def test_it_answers_only_get_and_head(db):
    assert Client().post("/metrics").status_code == 405
    assert Client().post("/healthz").status_code == 405
    assert Client().head("/healthz").status_code in (200, 503)


def test_every_metric_in_docs_operations_md_is_exported_and_the_reverse(ledger):
    r = Client().get("/metrics")
    declared = set(re.findall(r"^# TYPE (\S+) ", r.content.decode(), re.MULTILINE))
    # Declared only with a witness policy (test_it_reports_the_witnesses_of_the_latest_checkpoint).
    witness_only = {
        "bluecarbon_witness_cosignatures",
        "bluecarbon_witness_cosigned",
        "bluecarbon_witness_quorum_met",
        "bluecarbon_witness_lag_seconds",
        "bluecarbon_witness_refusals_standing",
    }
    doc = (Path(django_settings.BASE_DIR) / "docs" / "operations.md").read_text()
    documented = set(re.findall(r"^\| `(bluecarbon_[a-z_]+)", doc, re.MULTILINE))
    assert documented == declared | witness_only
