"""Fixtures for the audit package's tests: a toy log that signs checkpoints, and real witness
processes. No Django, no server: these run in a bare virtualenv with only the package."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bluecarbon_audit import merkle
from bluecarbon_audit.note import Checkpoint, Signer, checkpoint_sign
from bluecarbon_audit.testing import WitnessProcess, start_witness


class ToyLog:
    """A log of ``entry-<i>`` leaves (or another history, for forks) signing its checkpoints."""

    def __init__(self, origin: str, signer: Signer | None = None, fork_at: int | None = None):
        self.origin = origin
        self.signer = signer or Signer.generate(origin)
        self.fork_at = fork_at

    @property
    def verifier_key(self) -> str:
        return self.signer.verifier().to_string()

    def leaf(self, index: int) -> bytes:
        forked = self.fork_at is not None and index >= self.fork_at
        return merkle.leaf_hash(f"{'fork' if forked else 'entry'}-{index}".encode())

    def root(self, size: int) -> bytes:
        return merkle.root_of([self.leaf(i) for i in range(size)])

    def body(self, size: int) -> str:
        return Checkpoint(self.origin, size, self.root(size)).to_text()

    def checkpoint(self, size: int, signer: Signer | None = None) -> str:
        return checkpoint_sign(
            Checkpoint(self.origin, size, self.root(size)), signer or self.signer
        )

    def proof(self, old: int, new: int) -> list[bytes]:
        if old == 0 or old == new:
            return []

        def node(level: int, index: int) -> bytes:
            first = index << level
            return merkle.root_of([self.leaf(i) for i in range(first, first + (1 << level))])

        return merkle.consistency_proof(old, new, node)


@pytest.fixture
def toy_log() -> Callable[..., ToyLog]:
    return ToyLog


@pytest.fixture
def log() -> ToyLog:
    return ToyLog("log.example/ledger")


@pytest.fixture
def witness_factory(tmp_path: Path) -> Iterator[Callable[..., WitnessProcess]]:
    """Start witnesses (stopped at the end of the test); same name, same key and state."""
    started: list[WitnessProcess] = []

    def start(logs: dict[str, str | list[str]], name: str = "witness.example/w1") -> WitnessProcess:
        witness = start_witness(tmp_path / "witness", name, logs)
        started.append(witness)
        return witness

    yield start
    for witness in started:
        witness.stop()


@pytest.fixture
def witness(witness_factory: Callable[..., WitnessProcess], log: ToyLog) -> WitnessProcess:
    return witness_factory({log.origin: log.verifier_key})
