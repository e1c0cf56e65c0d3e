"""``GET /healthz``: 200 when the database answers, the signer has raised no alarm an operator
has not seen, the witnesses have refused nothing and keep up with the quorum, checkpoints keep
up with the entries and a worker has been heard from on every queue; 503, saying which, when
not. Each unhealthy condition is made the way the product meets it (a real signer refusal, a
real witness process refusing, no heartbeat), and the heartbeat comes from a real worker."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from bluecarbon_audit.note import Signer
from bluecarbon_audit.testing import WitnessProcess, start_witness
from django.conf import settings as django_settings
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone

from ledger import operations, services, witnesses
from ledger.models import SignerAlarm, WitnessRefusal, WorkerHeartbeat
from ledger.signer import SignerRefused
from ledger.signing import get_signer
from ledger.tasks import worker_heartbeat_task
from tests.factories import World


def _transfer(world: World, batch, quantity: int = 1_000) -> None:
    services.credit_transfer(
        actor=world.dev,
        batch=batch.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=quantity,
    )


def heartbeats_on_every_queue() -> None:
    for queue in django_settings.WORKER_QUEUES:
        operations.worker_heartbeat_record(queue=queue, worker="celery@test-host")


@pytest.fixture
def healthy(world) -> World:
    """Entries, a checkpoint over all of them, a worker heard from on every queue."""
    world.batch = world.issue(1_000_000)
    _transfer(world, world.batch)
    services.ledger_checkpoint_issue()
    heartbeats_on_every_queue()
    return world


def healthz(client: Client | None = None) -> tuple[int, dict]:
    r = (client or Client()).get("/healthz")
    assert r["Content-Type"] == "application/json"
    assert r["Cache-Control"] == "no-store"
    return r.status_code, r.json()


def failing(body: dict) -> set[str]:
    return {name for name, check in body["checks"].items() if not check["ok"]}


def signer_refuses(settings) -> SignerRefused:
    """The real signer, asked to sign for another log than the one its state is for, refuses
    and records an alarm (as for any database it cannot extend)."""
    origin = settings.LEDGER_ORIGIN
    settings.LEDGER_ORIGIN = "another.example/ledger"
    try:
        with pytest.raises(SignerRefused) as info:
            services.ledger_checkpoint_issue()
    finally:
        settings.LEDGER_ORIGIN = origin
    return info.value


@dataclass
class Witnesses:
    """A policy of one witness, "w1", that does not hold our log's key: it refuses (403)."""

    tmp: Path
    policy: Path
    process: WitnessProcess

    def write_policy(self) -> None:
        w = self.process
        self.policy.write_text(f"witness w1 {w.verifier_key} {w.url}\nquorum w1\n")

    def fix(self) -> None:
        """The witness operator gives it our real key: the same witness (its key and state) on
        a new port, and the policy file names the new address."""
        self.process.stop()
        key = get_signer().verifier().to_string()
        self.process = start_witness(
            self.tmp, "witness.example/w1", {django_settings.LEDGER_ORIGIN: key}
        )
        self.write_policy()
        time.sleep(0.01)  # the policy is read again when its mtime changes


@pytest.fixture
def misconfigured_witness(tmp_path, settings):
    wrong = Signer.generate(django_settings.LEDGER_ORIGIN).verifier().to_string()
    process = start_witness(tmp_path, "witness.example/w1", {django_settings.LEDGER_ORIGIN: wrong})
    w = Witnesses(tmp_path, tmp_path / "witness-policy.txt", process)
    w.write_policy()
    settings.LEDGER_WITNESS_POLICY_FILE = str(w.policy)
    yield w
    w.process.stop()


def witness_refuses(w: Witnesses) -> None:
    outcomes = witnesses.checkpoint_witness()
    assert [o.status for o in outcomes] == ["refused"], outcomes


# ---- healthy -------------------------------------------------------------------------------


def test_it_answers_200_when_every_check_passes(healthy):
    status, body = healthz()
    assert status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "signer", "witnesses", "checkpoint", "workers"}
    assert body["checks"]["checkpoint"]["lag_entries"] == 0
    assert body["checks"]["witnesses"] == {"ok": True, "policy": False}
    assert set(body["checks"]["workers"]["queues"]) == set(django_settings.WORKER_QUEUES)


def test_it_needs_no_sign_in_and_is_not_redirected_to_https(healthy, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/healthz").status_code == 200
    assert Client().get("/registry/projects/").status_code == 301  # the rest is


# ---- each unhealthy condition --------------------------------------------------------------


def test_an_unreachable_database_is_a_503_and_nothing_else_is_asked(healthy):
    with mock.patch.object(connection, "ensure_connection", side_effect=OperationalError("gone")):
        status, body = healthz()
    assert status == 503
    assert failing(body) == {"database", "signer", "witnesses", "checkpoint", "workers"}
    assert body["checks"]["signer"]["skipped"] == "the database is not reachable"


def test_a_signer_refusal_is_a_503_until_an_operator_acknowledges_it(healthy, settings):
    refusal = signer_refuses(settings)
    status, body = healthz()
    assert status == 503 and failing(body) == {"signer"}
    assert body["checks"]["signer"]["unacknowledged_alarms"] == 1
    assert str(refusal) not in str(body)  # the alarm's text is for the admin

    alarm = SignerAlarm.objects.get()
    assert operations.signer_alarms_acknowledge(alarms=[alarm.pk], by="test") == 1
    assert operations.signer_alarms_acknowledge(alarms=[alarm.pk], by="test") == 0  # once
    assert healthz()[0] == 200
    signer_refuses(settings)  # it refuses again: a new alarm
    assert healthz()[0] == 503


def test_a_witness_refusal_is_a_503_until_that_witness_cosigns_a_checkpoint_as_large(
    healthy, misconfigured_witness
):
    witness_refuses(misconfigured_witness)
    refused = WitnessRefusal.objects.get()
    assert refused.status == 403
    status, body = healthz()
    assert status == 503 and "witnesses" in failing(body)
    check = body["checks"]["witnesses"]
    assert check["refused_by"] == ["w1"]
    assert check["latest_quorum_met"] is False
    assert refused.message not in str(body)

    misconfigured_witness.fix()
    assert [o.status for o in witnesses.checkpoint_witness()] == ["cosigned"]
    status, body = healthz()
    assert status == 200, body
    assert body["checks"]["witnesses"]["latest_quorum_met"] is True
    assert body["checks"]["witnesses"]["latest_cosigners"] == ["w1"]


def test_a_witness_refusal_stands_when_only_another_witness_cosigns(
    healthy, misconfigured_witness, tmp_path
):
    """w1 refuses what w2 cosigns: a split view is exactly what a refusal must not hide."""
    key = get_signer().verifier().to_string()
    w2 = start_witness(tmp_path / "w2", "witness.example/w2", {django_settings.LEDGER_ORIGIN: key})
    try:
        w1 = misconfigured_witness.process
        misconfigured_witness.policy.write_text(
            f"witness w1 {w1.verifier_key} {w1.url}\nwitness w2 {w2.verifier_key} {w2.url}\n"
            "group any 1 w1 w2\nquorum any\n"
        )
        outcomes = {o.witness: o.status for o in witnesses.checkpoint_witness()}
        assert outcomes == {"w1": "refused", "w2": "cosigned"}
        status, body = healthz()
        assert status == 503
        assert body["checks"]["witnesses"]["latest_quorum_met"] is True  # 1 of 2 is the quorum
        assert body["checks"]["witnesses"]["refused_by"] == ["w1"]
    finally:
        w2.stop()


def test_a_checkpoint_short_of_the_quorum_is_a_503_once_it_has_waited_past_the_lag(
    healthy, misconfigured_witness, settings
):
    misconfigured_witness.process.stop()  # unreachable: no refusal, no cosignature
    assert [o.status for o in witnesses.checkpoint_witness()] == ["unreachable"]
    status, body = healthz()
    # Witnessing runs after each checkpoint: a moment without the quorum is not a failure.
    assert status == 200, body
    assert body["checks"]["witnesses"]["latest_quorum_met"] is False
    assert body["checks"]["witnesses"]["lag_seconds"] > 0
    settings.HEALTH_WITNESS_LAG_SECONDS = 0.0
    status, body = healthz()
    assert status == 503 and failing(body) == {"witnesses"}


def test_an_unreadable_witness_policy_is_a_503(healthy, settings, tmp_path):
    settings.LEDGER_WITNESS_POLICY_FILE = str(tmp_path / "missing-policy.txt")
    status, body = healthz()
    assert status == 503 and failing(body) == {"witnesses"}
    assert str(tmp_path) not in str(body)


def test_entries_waiting_for_a_checkpoint_past_the_threshold_are_a_503(healthy, settings):
    _transfer(healthy, healthy.batch)
    _transfer(healthy, healthy.batch)
    status, body = healthz()
    assert status == 200, body
    assert body["checks"]["checkpoint"]["lag_entries"] == 2
    settings.HEALTH_CHECKPOINT_LAG_SECONDS = 0.0
    time.sleep(0.01)
    status, body = healthz()
    assert status == 503 and failing(body) == {"checkpoint"}
    assert body["checks"]["checkpoint"]["lag_seconds"] > 0
    services.ledger_checkpoint_issue()
    assert healthz()[0] == 200  # covered again: no lag, whatever the threshold


def test_no_worker_heard_from_on_a_queue_is_a_503(healthy, settings):
    settings.WORKER_QUEUES = [*settings.WORKER_QUEUES, "witness"]
    status, body = healthz()
    assert status == 503 and failing(body) == {"workers"}
    assert body["checks"]["workers"]["queues"]["witness"] == {"seconds_since_heartbeat": None}
    operations.worker_heartbeat_record(queue="witness", worker="celery@witness-host")
    assert healthz()[0] == 200
    assert "witness-host" not in Client().get("/healthz").content.decode()  # no host names

    settings.HEALTH_WORKER_SILENCE_SECONDS = 0.0
    time.sleep(0.01)
    status, body = healthz()
    assert status == 503 and failing(body) == {"workers"}
    assert body["checks"]["workers"]["queues"]["witness"]["seconds_since_heartbeat"] > 0


def test_a_heartbeat_is_one_row_per_worker_and_queue_and_old_ones_are_forgotten(db):
    operations.worker_heartbeat_record(queue="q", worker="celery@a")
    first = WorkerHeartbeat.objects.get().beat_at
    operations.worker_heartbeat_record(queue="q", worker="celery@a")
    assert WorkerHeartbeat.objects.get().beat_at > first
    WorkerHeartbeat.objects.filter(worker="celery@a").update(
        beat_at=timezone.now() - dt.timedelta(days=8)
    )
    operations.worker_heartbeat_record(queue="q", worker="celery@b")
    assert list(WorkerHeartbeat.objects.values_list("worker", flat=True)) == ["celery@b"]


def test_with_a_heartbeat_dir_a_worker_writes_the_time_to_a_file_named_after_it(tmp_path):
    directory = tmp_path / "var" / "heartbeats"  # not there yet
    before = int(time.time())
    path = operations.worker_heartbeat_file_write(directory=str(directory), worker="registry@a")
    assert path == directory / "registry"
    assert before <= int(path.read_text()) <= time.time()
    # Replaced, by the same worker name on another host too; no temporary file left beside it.
    operations.worker_heartbeat_file_write(directory=str(directory), worker="registry@b")
    assert [p.name for p in directory.iterdir()] == ["registry"]
    for name in ("", "@a", "..@a", "a/b@c"):
        with pytest.raises(ValueError):
            operations.worker_heartbeat_file_write(directory=str(directory), worker=name)


def test_the_heartbeat_task_writes_the_file_only_with_a_heartbeat_dir(db, settings, tmp_path):
    settings.WORKER_HEARTBEAT_DIR = ""
    worker_heartbeat_task.apply(args=("q",)).get()
    assert WorkerHeartbeat.objects.filter(queue="q").exists()
    assert not list(tmp_path.iterdir())
    settings.WORKER_HEARTBEAT_DIR = str(tmp_path)
    worker_heartbeat_task.apply(args=("q",)).get()
    (worker,) = WorkerHeartbeat.objects.values_list("worker", flat=True)
    assert [p.name for p in tmp_path.iterdir()] == [worker.partition("@")[0]]


# ---- the heartbeat through beat's schedule and a real worker -------------------------------


def test_beat_sends_a_heartbeat_to_every_queue_workers_must_serve():
    entries = {
        e["args"][0]: e
        for e in django_settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == "ledger.tasks.worker_heartbeat_task"
    }
    assert set(entries) == set(django_settings.WORKER_QUEUES)
    assert django_settings.CELERY_TASK_DEFAULT_QUEUE in entries
    for queue, entry in entries.items():
        assert entry["options"]["queue"] == queue
        assert entry["schedule"] < django_settings.HEALTH_WORKER_SILENCE_SECONDS


def test_a_real_worker_running_the_heartbeat_makes_the_workers_check_pass(worker, settings):
    settings.WORKER_QUEUES = [worker.queue]
    status, body = healthz()
    assert status == 503 and failing(body) == {"workers"}

    worker_heartbeat_task.apply_async(args=(worker.queue,), queue=worker.queue)
    deadline = time.monotonic() + 30
    while not WorkerHeartbeat.objects.filter(queue=worker.queue).exists():
        assert time.monotonic() < deadline, worker.log()[-2000:]
        time.sleep(0.1)
    row = WorkerHeartbeat.objects.get(queue=worker.queue)
    assert row.worker.startswith(f"{worker.queue}@")  # the worker's node name
    status, body = healthz()
    assert status == 200, body
