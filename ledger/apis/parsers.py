"""The API's one body parser: DRF's JSON parser with a bound on nesting.

The JSON decoder recurses once per level of nesting and fails with ``RecursionError`` near
Python's recursion limit (about 1,000 levels), which DRF does not catch: a 500. What walks the
parsed body afterwards (serializers, the canonical encoding of a ledger entry, the request hash
of an ``Idempotency-Key``) recurses too, so a body just under that limit could fail later. A
body nested deeper than ``MAX_DEPTH`` is refused here, as ``400 parse_error``, before any of
that runs. No valid request nests deeper than 6 levels (a project whose location is a GeoJSON
MultiPolygon), so the bound leaves room and refuses nothing real.

The size of a body is bounded before it is read (``DATA_UPLOAD_MAX_MEMORY_SIZE``; over it,
``413 request_too_large``: ``errors.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 32


def nesting_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` (parsed JSON) nests objects and arrays more than ``limit`` deep; a
    scalar is depth 0, ``[]`` and ``{}`` depth 1. Iterative: it must not recurse either."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class JSONParser(parsers.JSONParser):
    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        too_deep = ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels")
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise too_deep from None
        if nesting_exceeds(data, MAX_DEPTH):
            raise too_deep
        return data
