"""ledger/core and auctions/core are re-exports of the audit package (audit/bluecarbon_audit).

The server and auditors run one implementation; these shims keep the server's imports working.
Every name any module of the repository (server, tests, bench) takes from a shim must resolve to
the very object of the package, so a name missing from a shim fails here, not in production.
Pure: runs without Django (`pytest tests/core -p no:django`).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEDGER = ("entry", "merkle", "note", "quantity", "replay", "scan")
AUCTIONS = ("clearing", "draws", "replay", "result", "sealing")
SHIMS = {f"ledger.core.{m}": f"bluecarbon_audit.{m}" for m in LEDGER} | {
    f"auctions.core.{m}": f"bluecarbon_audit.auctions.{m}" for m in AUCTIONS
}
SKIP = {".venv", "audit", "var", "test-artifacts", "node_modules", "migrations"}


def _package_of(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1]


def _names_taken() -> dict[str, set[tuple[str, str]]]:
    """shim module -> {(name, file)} for `from shim import name` and `shim_alias.name`."""
    taken: dict[str, set[tuple[str, str]]] = {shim: set() for shim in SHIMS}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if SKIP & set(rel.parts):
            continue
        package = _package_of(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                if f"{module}.{alias.name}" in SHIMS:
                    aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
                elif module in SHIMS:
                    taken[module].add((alias.name, str(rel)))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                taken[aliases[node.value.id]].add((node.attr, str(rel)))
    return taken


TAKEN = _names_taken()


def test_the_scan_finds_what_the_server_imports():
    # A scan that found nothing would pass every check below vacuously.
    assert ("TRANSFER_BYTES", "ledger/verify_walk.py") in TAKEN["ledger.core.entry"]
    assert ("commitment", "auctions/services/bidding.py") in TAKEN["auctions.core.sealing"]
    assert all(TAKEN.values()), [shim for shim, names in TAKEN.items() if not names]


@pytest.mark.parametrize("shim", sorted(SHIMS))
def test_every_name_taken_from_a_shim_is_the_audit_package_object(shim):
    module = importlib.import_module(shim)
    target = importlib.import_module(SHIMS[shim])
    for name, where in sorted(TAKEN[shim]):
        assert hasattr(module, name), f"{where} takes {name} from {shim}, which lacks it"
        assert getattr(module, name) is getattr(target, name), f"{shim}.{name} is a copy"


def test_the_audit_package_imports_nothing_of_django_or_the_server():
    modules = ", ".join(SHIMS.values())
    code = (
        f"import sys, bluecarbon_audit.witness, bluecarbon_audit.testing, {modules}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'django', 'rest_framework', 'ledger', 'auctions', 'bluecarbon', 'portal'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")
