"""_ledger_append_many, the one writer of ledger entries, against _ledger_append one entry at a
time: the same bytes, MACs, head and Merkle nodes, on SQLite (executemany) and PostgreSQL
(COPY)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import transaction

from ledger import services
from ledger.actors import Actor
from ledger.core.entry import entry_hash
from ledger.entry_auth import create_key
from ledger.models import LedgerEntry, LedgerHead, MerkleNode
from ledger.services import append

pytestmark = pytest.mark.django_db

AT = dt.datetime(2026, 11, 22, 22, 7, 2, 123456, tzinfo=dt.UTC)

# The kinds of entry an append meets: transfers the byte template writes, a transfer it leaves
# to the canonical encoder (an actor outside its ASCII), and other types.
ENTRIES: list[tuple[str, dict[str, Any]]] = [
    ("credit.transfer", {"batch": 1, "from": 2, "to": 3, "quantity": 1}),
    ("project.update", {"project": 7, "changes": {"name": "Xiangshan 象山"}}),
    ("credit.transfer", {"batch": 1, "from": 3, "to": 2, "quantity": 10**14}),
    ("credit.transfer", {"batch": 2, "from": 2, "to": 4, "quantity": 10**15}),  # 16 digits
    ("escrow.release", {"hold": 5, "quantity": 999}),
    ("credit.transfer", {"batch": 1, "from": 2, "to": 3, "quantity": 250}),
]


def _written() -> tuple[list[tuple[Any, ...]], tuple[int, bytes], list[tuple[int, int, bytes]]]:
    """Every entry row, the head, and the Merkle nodes the checkpointer then stores."""
    rows = [
        (seq, bytes(body), type_, bytes(mac) if mac is not None else None)
        for seq, body, type_, mac in LedgerEntry.objects.order_by("seq").values_list(
            "seq", "body", "type", "mac"
        )
    ]
    head = LedgerHead.objects.get(pk=1)
    services.tree_extend()
    nodes = [
        (level, index, bytes(digest))
        for level, index, digest in MerkleNode.objects.order_by("level", "index").values_list(
            "level", "index", "hash"
        )
    ]
    return rows, (head.size, bytes(head.last_hash)), nodes


def _rolled_back(write: Any) -> Any:
    class Done(Exception):
        pass

    try:
        with transaction.atomic():
            write()
            raise Done(_written())
    except Done as done:
        return done.args[0]


@pytest.mark.parametrize("actor", [Actor.system("tests"), Actor("user:ü", None, True)])
@pytest.mark.parametrize("since", [0, 4])
def test_n_single_appends_and_one_set_append_write_the_same_ledger(
    settings, tmp_path, actor, since
):
    settings.LEDGER_ENTRY_KEY_FILE = str(tmp_path / "entry.key")
    create_key(tmp_path / "entry.key", since=since)  # entries before `since` carry no MAC
    append._ledger_append(type="org.register", actor=actor, data={"organization": {}}, at=AT)

    def one_by_one() -> None:
        for type_, data in ENTRIES:
            append._ledger_append(type=type_, actor=actor, data=data, at=AT)

    def at_once() -> None:
        rows = append._ledger_append_many(entries=ENTRIES, actor=actor, at=AT)
        assert [seq for seq, *_ in rows] == list(range(1, len(ENTRIES) + 1))

    single, many = _rolled_back(one_by_one), _rolled_back(at_once)
    assert many == single
    rows, head, nodes = many
    assert [r[2] for r in rows] == ["org.register"] + [t for t, _ in ENTRIES]
    assert [r[3] is None for r in rows] == [seq < since for seq in range(len(rows))]
    assert head == (len(rows), entry_hash(rows[-1][1]))
    assert len(rows) == 7 and len(nodes) == 7 + 3 + 1  # the leaves, full pairs, full fours


def test_appending_nothing_writes_nothing():
    append._ledger_append(type="org.register", actor=Actor.system("tests"), data={})
    before = _rolled_back(lambda: None)
    assert append._ledger_append_many(entries=[], actor=Actor.system("tests")) == []
    assert _rolled_back(lambda: None) == before


def test_the_rows_an_append_returns_are_the_rows_it_wrote():
    append._ledger_append(type="org.register", actor=Actor.system("tests"), data={})
    rows = append._ledger_append_many(entries=ENTRIES, actor=Actor.system("tests"))
    written = _written()[0][1:]
    assert [(s, b, t, m) for s, b, t, m in rows] == written
