"""Fixtures for the service tests: the ledger's last entries, a snapshot of every registry table,
and the check that a refused write left everything as it was and the ledger still verifies."""

from __future__ import annotations

import gc
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from bluecarbon.errors import Codes
from ledger.core.entry import Entry, decode_entry
from ledger.exceptions import (
    CommonCode,
    Conflict,
    DomainError,
    ErrorCode,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from ledger.models import (
    Account,
    Batch,
    Cancellation,
    EscrowHold,
    Holding,
    LedgerEntry,
    LedgerHead,
    Methodology,
    Organization,
    Project,
    ProjectDocument,
    Retirement,
    Reversal,
)

# The HTTP status each error class stands for.
STATUS = {
    InvalidInput: 400,
    NotFound: 404,
    PermissionDenied: 403,
    Conflict: 409,
    Unprocessable: 422,
    TooLarge: 413,
    UnsupportedMediaType: 415,
}

_TABLES = (
    Organization,
    Account,
    Methodology,
    Project,
    Batch,
    Holding,
    EscrowHold,
    Retirement,
    Cancellation,
    Reversal,
    ProjectDocument,
    LedgerEntry,
    LedgerHead,
)


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of every registry table and of the ledger, as plain values."""
    state: dict[str, list[dict[str, Any]]] = {}
    for model in _TABLES:
        rows = []
        for row in model.objects.order_by("pk").values():
            rows.append({k: bytes(v) if isinstance(v, memoryview) else v for k, v in row.items()})
        state[model.__name__] = rows
    return state


def entries_since(seq: int) -> list[Entry]:
    """The decoded ledger entries from sequence number ``seq`` on."""
    return [decode_entry(bytes(e.body)) for e in LedgerEntry.objects.filter(seq__gte=seq)]


@pytest.fixture
def verify_ledger(tmp_path) -> Callable[[], str]:
    """Run ``manage.py ledger_verify`` and return what it printed; its exit on failure becomes
    an AssertionError naming the problem. Its state file goes to a temporary directory."""

    def run() -> str:
        from ledger.signing import get_signer

        # A ledger no checkpoint has signed yet has no verifier keys on a fresh machine: the
        # development key (and with it the trusted keys file) exists once anything signed.
        get_signer()
        out, err = io.StringIO(), io.StringIO()
        failure = None
        try:
            call_command(
                "ledger_verify",
                "--no-progress",
                "--state-file",
                str(tmp_path / "verify-state.json"),
                stdout=out,
                stderr=err,
            )
        except SystemExit as exc:
            failure = f"ledger_verify exited {exc.code}: {err.getvalue()}"
        if failure is not None:
            # A failed verification leaves half-read query iterators in its traceback. Collect
            # them now, while the test's transaction (and PostgreSQL's server-side cursors in
            # it) still exists, not at some later garbage collection.
            gc.collect()
            raise AssertionError(failure)
        text = out.getvalue()
        assert text.startswith("OK: "), text
        return text

    return run


@pytest.fixture(params=["serial", "parallel"])
def verifier_path(request, settings, monkeypatch) -> str:
    """Run the test once with the serial verifier and once with the parallel one, cut into
    tiny segments and chunks so that runs, chunk and segment boundaries and checkpoints fall
    everywhere in a small ledger."""
    from ledger import verify_parallel

    if request.param == "serial":
        settings.LEDGER_VERIFY_WORKERS = 0
    elif connection.vendor != "postgresql":
        pytest.skip("the parallel verifier reads with COPY: PostgreSQL only")
    else:
        settings.LEDGER_VERIFY_WORKERS = 2
        monkeypatch.setattr(verify_parallel, "MIN_ENTRIES", 0)
        monkeypatch.setattr(verify_parallel, "SEGMENT", 7)
        monkeypatch.setattr(verify_parallel, "CHUNK", 3)
    return str(request.param)


@pytest.fixture
def one_new_entry() -> Callable[[], Any]:
    """``with one_new_entry() as new: <a write>``; then ``new.entry`` is the one entry the write
    appended (decoded), and the test fails if it appended none or more than one."""

    class New:
        entry: Entry

    @contextmanager
    def watch() -> Iterator[New]:
        before = LedgerEntry.objects.count()
        new = New()
        yield new
        appended = entries_since(before)
        assert LedgerEntry.objects.count() == before + 1, [e.type for e in appended]
        assert len(appended) == 1
        assert appended[0].seq == before
        new.entry = appended[0]

    return watch


@pytest.fixture
def refused(verify_ledger) -> Callable[..., Any]:
    """``with refused(Conflict, ErrorCode.X) as err: <a write>`` checks that the write raises
    exactly that error class with that code and the class's HTTP status, that every registry
    table and the ledger are exactly as before, and that the ledger still verifies.
    ``err.value`` is the exception."""

    @contextmanager
    def check(cls: type[DomainError], code: Codes) -> Iterator[Any]:
        before = snapshot()
        entries = LedgerEntry.objects.count()
        with pytest.raises(DomainError) as err:
            yield err
        assert type(err.value) is cls, f"{type(err.value).__name__}: {err.value}"
        assert err.value.code == code, f"{err.value.code!r}: {err.value}"
        assert isinstance(err.value.code, ErrorCode | CommonCode)
        assert err.value.status_code == STATUS[cls]
        assert err.value.as_dict()["code"] == code.value
        assert err.value.message
        assert LedgerEntry.objects.count() == entries
        after = snapshot()
        for table in before:
            assert after[table] == before[table], f"{table} changed"
        verify_ledger()

    return check
