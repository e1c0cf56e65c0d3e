"""Two signer processes with state files of their own sign the same checkpoint at once: the
second meets the first's row (tests/ledger/test_signer.py has the signer's other promises)."""

from __future__ import annotations

import shutil
import threading

import pytest
from django.db import connection, transaction

from ledger import services, signer
from ledger.models import Checkpoint
from tests import factories
from tests.ledger.test_signer import more


class _Rollback(Exception):
    pass


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a second connection's uncommitted row"
)
def test_another_signer_storing_the_same_checkpoint_first_is_no_error(
    committed_db, tmp_path, settings
):
    """Two signer processes with state files of their own (the session worker beside a test,
    two hosts) may sign the same size at once: the second's insert then waits on the first's
    and meets its row. The same root is the same checkpoint, not an IntegrityError (CI's
    PostgreSQL pass once failed a test's fixture on it)."""
    # No checkpoint task from these commits: the session's worker, a third signer, must not
    # store the size first (each process enqueues at most one per interval since its start).
    settings.LEDGER_CHECKPOINT_INTERVAL = 10**9
    world = factories.World()
    world.batch = world.issue(1_000_000)
    path = signer.state_path()
    services.tree_extend()
    signer.checkpoint_sign_new()  # the state exists, so it can be put back
    more(world)
    services.tree_extend()
    shutil.copy(path, tmp_path / "before.json")
    # What the other signer stores: this signer's own signature, made and rolled back.
    with pytest.raises(_Rollback), transaction.atomic():
        made = signer.checkpoint_sign_new()
        assert made is not None
        row = {f: getattr(made, f) for f in ("size", "root", "note", "key_name", "key_hash")}
        raise _Rollback
    shutil.copy(tmp_path / "before.json", path)
    stored, go = threading.Event(), threading.Event()

    def other_signer() -> None:
        try:
            with transaction.atomic():
                Checkpoint.objects.create(**row)
                stored.set()
                go.wait(10)  # committed once this signer's insert waits on it
        finally:
            connection.close()

    other = threading.Thread(target=other_signer)
    other.start()
    assert stored.wait(10)
    threading.Timer(0.5, go.set).start()
    assert signer.checkpoint_sign_new() is None  # its look saw no row; its insert met one
    other.join(10)
    assert Checkpoint.objects.filter(size=row["size"]).count() == 1
    assert signer.state_read().size == row["size"]
