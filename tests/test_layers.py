"""Imports go one way (docs/architecture.md): nothing below an app's API imports it, and an
import hidden inside a function says why it is there (issue 15, part 4). Read from the source,
so a test fails on the import itself, not on what it would break."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules(*folders: str) -> Iterator[tuple[Path, str, ast.Module]]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            relative = path.relative_to(ROOT).with_suffix("")
            parts = list(relative.parts)
            if parts[-1] == "__init__":
                parts.pop()
                parts.append("__init__")  # so a relative import resolves from the package
            yield path, ".".join(parts), ast.parse(path.read_text(), str(path))


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The absolute names an import statement of ``module`` takes."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".")[: -node.level]
        base = ".".join([*package, base] if base else package)
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def _imports(module: str, tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in _imported(module, node):
                yield node.lineno, name


# The app's configuration registers the API's OpenAPI extensions when Django is ready.
_MAY_IMPORT_THE_API = {"ledger.apps"}


def test_nothing_below_the_registry_api_and_nothing_in_the_portal_imports_it():
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path, module, tree in _modules("ledger", "portal")
        if not module.startswith("ledger.apis.") and module not in _MAY_IMPORT_THE_API
        for line, name in _imports(module, tree)
        if name == "ledger.apis" or name.startswith("ledger.apis.")
    ]
    assert offenders == []


def _function_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    def walk(node: ast.AST, inside: bool) -> Iterator[ast.Import | ast.ImportFrom]:
        for child in ast.iter_child_nodes(node):
            if inside and isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            yield from walk(
                child, inside or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            )

    yield from walk(tree, False)


def _explained(lines: list[str], node: ast.stmt) -> bool:
    """A comment on the import's line, or above the run of imports it stands in."""
    index = node.lineno - 1
    if "#" in lines[index]:
        return True
    index -= 1
    while index >= 0:
        text = lines[index].strip()
        if text.startswith("#"):
            return True
        if not (text.startswith(("import ", "from ")) or text == ""):
            return False
        index -= 1
    return False


def test_an_import_inside_a_function_says_why_it_is_not_at_the_top():
    offenders = []
    for path, _, tree in _modules(
        "ledger", "bluecarbon", "auctions", "listings", "portal", "audit/bluecarbon_audit"
    ):
        lines = path.read_text().splitlines()
        offenders += [
            f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}"
            for node in _function_imports(tree)
            if not _explained(lines, node)
        ]
    assert offenders == []
