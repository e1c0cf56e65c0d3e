from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.db import connection

if TYPE_CHECKING:
    from tests.factories import World
    from tests.worker import Worker

# Django-dependent imports happen inside fixtures, so the pure-core tests (tests/core) also run
# without Django: `pytest tests/core -p no:django`.

ARTIFACTS = Path(
    os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts")
)


@pytest.fixture
def admin_client(admin_user):  # pytest-django's, with the second factor the admin asks for
    from django.test import Client

    from tests.two_factor import force_login

    return force_login(Client(), admin_user)


@pytest.fixture
def world(db: None) -> World:
    from tests.factories import World

    return World()


@pytest.fixture
def ledger_length():
    """Call it to get the number of ledger entries now."""
    from ledger.models import LedgerEntry

    return lambda: LedgerEntry.objects.count()


def _triggers_installed() -> bool:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'ledger_ledgerentry_append_only'"
            )
        else:
            cursor.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
                "AND name = 'ledger_ledgerentry_no_update'"
            )
        return cursor.fetchone()[0] > 0


@pytest.fixture
def _append_only_restored(django_db_setup: None, django_db_blocker) -> Iterator[None]:
    yield
    # Runs after transactional_db's flush (it was set up first): the triggers come back.
    from ledger import triggers

    with django_db_blocker.unblock():
        if not _triggers_installed():
            triggers.install(connection)


@pytest.fixture
def escrow_owner_check_dropped(db: None) -> Iterator[None]:
    """What a database superuser can do: switch off the check that ties an escrow hold's owner
    to its reference. The test's transaction (``db``, not ``transactional_db``) rolls
    PostgreSQL's DROP back; SQLite's pragma belongs to the connection, so it is reset here."""
    postgresql = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgresql:
            # The test's rows leave deferred foreign-key checks ALTER TABLE will not run past.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(
                "ALTER TABLE ledger_escrowhold DROP CONSTRAINT escrow_hold_owner_by_reference"
            )
        else:
            cursor.execute("PRAGMA ignore_check_constraints = ON")
    yield
    if not postgresql:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA ignore_check_constraints = OFF")


@pytest.fixture(autouse=True)
def _signer_state(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Each test's own checkpoint-signer state (ledger/signer.py): the state outlives the
    database, which each test starts afresh."""
    if request.config.pluginmanager.has_plugin("django"):
        request.getfixturevalue("settings").LEDGER_SIGNER_STATE_FILE = str(
            tmp_path / "signer-state.json"
        )


_worker_signer_states: list[Path] = []  # of the session's worker processes


def _reset_worker_signer_states() -> None:
    from ledger.signer import state_reset

    for path in _worker_signer_states:
        state_reset(path)


@pytest.fixture
def committed_db(_append_only_restored: None, transactional_db: None) -> Iterator[None]:
    """Real commits (so a worker process sees the data and on_commit hooks run). The ledger's
    append-only triggers are lifted only for the flush that empties the database afterwards,
    and the session worker's signer forgets the ledger it signed before (it is emptied)."""
    from ledger import triggers

    _reset_worker_signer_states()
    yield
    triggers.uninstall(connection)
    _reset_worker_signer_states()


@pytest.fixture(scope="session", autouse=True)
def _flush_outlasts_a_deadlock() -> Iterator[None]:
    """The flush that empties the database after a committed test TRUNCATEs every table; the
    session worker may still be finishing what that test's commits enqueued (a checkpoint, a
    timer), reading tables in another order, and PostgreSQL then ends one of the two as a
    deadlock. When it picks the flush, try the flush again: production never truncates, so
    this is the test harness's race, not the application's."""
    import time

    from django.db import OperationalError

    ops = type(connection.ops)
    original = ops.execute_sql_flush

    def execute_sql_flush(self: object, sql_list: list[str]) -> None:
        for attempt in range(5):
            try:
                return original(self, sql_list)  # type: ignore[arg-type]
            except OperationalError as exc:
                if "deadlock" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    ops.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]
    yield
    ops.execute_sql_flush = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup: None, django_db_blocker) -> Iterator[Worker]:
    """One real worker process for the session, consuming every kind of work on queues of its
    own (bluecarbon/queues.py), as bin/demo's workers do."""
    from tests.worker import Worker, routed

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with django_db_blocker.unblock():
        worker = Worker(ARTIFACTS)
    _worker_signer_states.append(worker.signer_state)
    with routed(worker.names):
        worker.start()
        yield worker
        worker.stop()


@pytest.fixture
def worker(celery_worker_process: Worker, committed_db: None) -> Worker:
    if celery_worker_process.proc is None or celery_worker_process.proc.poll() is not None:
        celery_worker_process.start()  # a test killed it: bring it back
    # The after-commit enqueue is throttled per process: what an earlier test enqueued (to a
    # worker that test may have killed, or before this queue existed) must not stand for
    # this test's writes.
    from ledger.services import append

    append._checkpoint_last_enqueued = append._dispatch_last_enqueued = 0.0
    return celery_worker_process
