"""Every kind of write at once on one holding and one batch, through the API, really committed:
no request waits on another in a cycle (``ledger/locks.py``'s order), so none answers 5xx, none
is lost, and the ledger verifies. And what the database still gives up on (a deadlock's victim,
a serialization failure, a lock wait past ``lock_timeout``, a busy SQLite file) is run again
where that can help, and otherwise answered 503 with ``Retry-After``, having applied nothing."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from bluecarbon.contention import ATTEMPTS
from ledger import services
from ledger.models import ApiKey, Batch, Holding, IdempotencyRecord, LedgerEntry
from ledger.signing import get_signer, trusted_verifiers
from ledger.verify import verify_ledger
from tests import factories

THREADS = 16
KINDS = ("retire", "escrow", "cancel", "transfer", "bulk", "release")
ENTRIES = {"retire": 1, "escrow": 1, "cancel": 1, "transfer": 1, "bulk": 4, "release": 1}


def _client(secret: str) -> APIClient:
    # A 500 is an answer to count here, not an exception to re-raise in the thread.
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.mark.slow
def test_every_kind_of_write_on_one_holding_and_one_batch_answers_without_a_5xx(
    committed_db, caplog
):
    caplog.set_level(logging.INFO, logger="bluecarbon.contention")
    w = factories.World()
    b = w.issue(10**9)
    dev, batch = w.dev_account.pk, b.pk
    # Recipients without a holding of the batch yet: their first transfer inserts one.
    recipients = [factories.account(w.buyer, f"recipient {i}").pk for i in range(4)]
    holds = [
        services.escrow_hold(actor=w.dev, batch=batch, account=dev, quantity=1000, reference=f"{i}")
        for i in range(THREADS)
    ]
    _, secret = services.apikey_create(
        organization=w.developer.pk, name="all", scopes=ApiKey.Scope.values
    )
    before = LedgerEntry.objects.count()
    held_before = Holding.objects.get(account_id=dev, batch_id=batch)

    def request(kind: str, i: int) -> tuple[str, dict[str, Any]]:
        one = {"batch": batch, "account": dev, "quantity": "0.001"}
        move = {"batch": batch, "sender": dev, "recipient": recipients[i % 4], "quantity": "0.001"}
        retire = {**one, "beneficiary": "Ningbo port", "purpose": "2024", "jurisdiction": "CN-ZJ"}
        cancel = {**one, "reason": "exported to another registry"}
        return {
            "retire": ("/api/v1/retirements", retire),
            "escrow": ("/api/v1/escrow-holds", {**one, "reference": f"lot {i}"}),
            "cancel": ("/api/v1/cancellations", cancel),
            "transfer": ("/api/v1/transfers", move),
            "bulk": (
                "/api/v1/bulk",
                {
                    "operations": [
                        {"op": "transfer", **move},
                        {"op": "retire", **retire},
                        {"op": "cancel", **cancel},
                        {"op": "transfer", **move},
                    ]
                },
            ),
            "release": (f"/api/v1/escrow-holds/{holds[i].pk}/release", {"quantity": "0.001"}),
        }[kind]

    barrier = threading.Barrier(THREADS)
    answers: list[tuple[str, int, Any]] = []
    failures: list[BaseException] = []

    def work(i: int) -> None:
        try:
            client = _client(secret)
            barrier.wait()
            for step in range(len(KINDS)):
                kind = KINDS[(i + step) % len(KINDS)]
                path, body = request(kind, i)
                r = client.post(path, body, format="json")
                answers.append((kind, r.status_code, r.content[:300]))
        except BaseException as exc:  # reported by the test
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)

    assert not any(t.is_alive() for t in threads), "a request is stuck"
    assert failures == []
    assert len(answers) == THREADS * len(KINDS)
    errors = [a for a in answers if a[1] >= 500]
    assert errors == [], f"{len(errors)} of {len(answers)} answered 5xx: {errors[:3]}"
    # Not even a deadlock the retry hid: the lock order leaves none.
    assert [r.getMessage() for r in caplog.records if r.name == "bluecarbon.contention"] == []
    # A release answers 200 (it creates nothing), every other write 201.
    assert all(code == (200 if kind == "release" else 201) for kind, code, _ in answers), answers

    # Nothing lost, nothing twice: every answer's effect, once.
    kinds = Counter(kind for kind, _, _ in answers)
    assert LedgerEntry.objects.count() == before + sum(ENTRIES[k] * n for k, n in kinds.items())
    h = Holding.objects.get(account_id=dev, batch_id=batch)
    n = THREADS  # requests of each kind; each moves 1 kg (a bulk: 4 operations of 1 kg)
    assert h.tradable == held_before.tradable - n * (1 + 1 + 1 + 1 + 4) + n
    assert h.escrowed == held_before.escrowed + n - n
    after = Batch.objects.get(pk=batch)
    assert (after.retired, after.cancelled) == (2 * n, 2 * n)
    received = Holding.objects.filter(account_id__in=recipients, batch_id=batch)
    assert sum(r.tradable for r in received) == n * (1 + 2)
    # The signing key, and so the trusted keys file, exist even where no checkpoint has been
    # signed yet in this session (this test alone, on a fresh BLUECARBON_VAR_DIR).
    get_signer()
    verify_ledger(verifiers=trusted_verifiers())


# ---- what is left: run again, or 503 -------------------------------------------------------


@contextmanager
def _failing_appends(times: int | None) -> Iterator[None]:
    """Every ledger append fails with PostgreSQL's deadlock error (SQLSTATE 40P01), raised by the
    database in the append's own INSERT, the first ``times`` times (``None``: always).

    The count is a sequence: ``nextval`` is not undone by the rollback it causes."""
    limit = "NULL" if times is None else str(times)
    with connection.cursor() as c:
        c.execute("CREATE SEQUENCE test_failed_appends")
        c.execute(
            "CREATE FUNCTION test_fail_append() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF {limit} IS NULL OR nextval('test_failed_appends') <= {limit} THEN "
            "RAISE EXCEPTION 'deadlock detected (injected by the test)' "
            "USING ERRCODE = 'deadlock_detected'; END IF; RETURN NEW; END $$"
        )
        c.execute(
            "CREATE TRIGGER test_fail_append BEFORE INSERT ON ledger_ledgerentry "
            "FOR EACH ROW EXECUTE FUNCTION test_fail_append()"
        )
    try:
        yield
    finally:
        with connection.cursor() as c:
            c.execute("DROP TRIGGER test_fail_append ON ledger_ledgerentry")
            c.execute("DROP FUNCTION test_fail_append()")
            c.execute("DROP SEQUENCE test_failed_appends")


def _transfer_setup() -> tuple[APIClient, dict[str, Any], factories.World]:
    w = factories.World()
    b = w.issue(1_000_000)
    _, secret = services.apikey_create(
        organization=w.developer.pk, name="k", scopes=ApiKey.Scope.values
    )
    client = _client(secret)
    # The key's first use is recorded outside the write's transaction: out of the way first.
    assert client.get("/api/v1/accounts").status_code == 200
    body = {"batch": b.pk, "sender": w.dev_account.pk, "recipient": w.buyer_account.pk}
    return client, {**body, "quantity": "7"}, w


def _balances() -> list[tuple[int, int, int]]:
    return sorted(Holding.objects.values_list("account_id", "tradable", "escrowed"))


def _assert_503(r: Any) -> None:
    assert r.status_code == 503, r.content
    assert r["Content-Type"] == "application/json"
    assert r["Retry-After"] == "1"
    assert r.json() == {
        "code": "service_unavailable",
        "message": "The registry is busy and applied nothing; send the same request again.",
        "detail": {"retry_after": 1},
    }


def test_a_deadlock_victim_is_run_again_from_the_start_and_applied_once(committed_db, caplog):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's deadlock error")
    caplog.set_level(logging.INFO, logger="bluecarbon.contention")
    client, body, w = _transfer_setup()
    before = LedgerEntry.objects.count()
    with _failing_appends(times=ATTEMPTS - 1):
        r = client.post("/api/v1/transfers", body, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
        with connection.cursor() as c:
            c.execute("SELECT last_value FROM test_failed_appends")
            assert c.fetchone()[0] == ATTEMPTS  # each attempt reached the append
    assert r.status_code == 201, r.content
    retries = [r.getMessage() for r in caplog.records if r.name == "bluecarbon.contention"]
    assert len(retries) == ATTEMPTS - 1 and "deadlock detected" in retries[0], retries
    assert LedgerEntry.objects.count() == before + 1
    assert Holding.objects.get(account=w.buyer_account).tradable == 7_000
    # The key was stored by the attempt that committed: a retry of the client replays it.
    again = client.post("/api/v1/transfers", body, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    assert (again.status_code, again["Idempotent-Replayed"]) == (201, "true")
    assert again.json() == r.json()
    assert LedgerEntry.objects.count() == before + 1


def test_a_deadlock_that_outlasts_the_retries_answers_503_and_applies_nothing(committed_db):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's deadlock error")
    client, body, _ = _transfer_setup()
    before, balances = LedgerEntry.objects.count(), _balances()
    with _failing_appends(times=None):
        r = client.post("/api/v1/transfers", body, format="json", HTTP_IDEMPOTENCY_KEY="t-2")
        bulk = client.post(
            "/api/v1/bulk", {"operations": [{"op": "transfer", **body}]}, format="json"
        )
    _assert_503(r)
    _assert_503(bulk)
    assert LedgerEntry.objects.count() == before
    assert _balances() == balances
    assert not IdempotencyRecord.objects.filter(key="t-2").exists()
    # The same request sent again, once the database lets it through, is applied (once).
    again = client.post("/api/v1/transfers", body, format="json", HTTP_IDEMPOTENCY_KEY="t-2")
    assert again.status_code == 201, again.content
    assert not again.has_header("Idempotent-Replayed")
    assert LedgerEntry.objects.count() == before + 1


def test_a_lock_wait_past_lock_timeout_answers_503_and_applies_nothing(committed_db):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's lock_timeout")
    client, body, w = _transfer_setup()
    before, balances = LedgerEntry.objects.count(), _balances()
    other = connection.copy()
    try:
        with other.cursor() as c:  # another session holds the sender's holding
            c.execute("BEGIN")
            c.execute(
                "SELECT 1 FROM ledger_holding WHERE account_id = %s FOR UPDATE",
                [w.dev_account.pk],
            )
        with connection.cursor() as c:
            c.execute("SET lock_timeout = '200ms'")
        try:
            r = client.post("/api/v1/transfers", body, format="json")
        finally:
            with connection.cursor() as c:
                c.execute("RESET lock_timeout")
    finally:
        other.close()
    _assert_503(r)
    assert LedgerEntry.objects.count() == before
    assert _balances() == balances


def test_a_busy_sqlite_database_answers_503_and_applies_nothing(committed_db):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's database lock")
    client, body, _ = _transfer_setup()
    before, balances = LedgerEntry.objects.count(), _balances()
    other = connection.copy()
    try:
        with other.cursor() as c:  # another writer holds the database's write lock
            c.execute("BEGIN IMMEDIATE")
        with connection.cursor() as c:
            c.execute("PRAGMA busy_timeout = 200")
        try:
            r = client.post("/api/v1/transfers", body, format="json")
        finally:
            with connection.cursor() as c:
                c.execute("PRAGMA busy_timeout = 30000")
    finally:
        other.close()
    _assert_503(r)
    assert LedgerEntry.objects.count() == before
    assert _balances() == balances
