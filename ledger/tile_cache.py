"""Full tiles from memory: a WSGI layer in front of Django for ``GET /api/v1/ledger/tlog/tile/``.

A full tile or entry bundle never changes once it exists (the log is append-only; C2SP
tlog-tiles serves them "immutable"), so the first answer Django gives for one can be given
again, byte for byte, headers included, without Django: no middleware, no view, no query. That
is what lets the API serve tiles at a rate near the web server's own static files (a mirror
fetching a log, a verifier reading it: ``bench/tile_serving.py``).

Only answers Django itself marked ``immutable`` (``ledger/apis/tiles.py``: full tiles, never a
partial tile, the checkpoint, a 404 or an error) are kept, per path and per whether the client
accepts gzip (bundles are compressed for those that do), in a per-process LRU bounded in bytes
(``LEDGER_TILE_CACHE_BYTES``; 0 turns it off). Everything else goes to Django as before.
Requests answered from here are counted in ``/metrics`` like any other (``RequestLatency``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

PREFIX = "/api/v1/ledger/tlog/tile/"
IMMUTABLE = "immutable"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Observer = Callable[[float], None]  # seconds an answer from memory took


class TileCache:
    def __init__(self, app: WSGIApp, capacity: int, observe: Observer | None = None) -> None:
        self.app = app
        self.capacity = capacity
        self.observe = observe
        self._kept: OrderedDict[tuple[str, bool], tuple[str, list[tuple[str, str]], bytes]] = (
            OrderedDict()
        )
        self._bytes = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if (
            self.capacity <= 0
            or environ.get("REQUEST_METHOD") != "GET"
            or not path.startswith(PREFIX)
            or environ.get("QUERY_STRING")
        ):
            return self.app(environ, start_response)
        started = time.perf_counter()
        key = (path, "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""))
        with self._lock:
            hit = self._kept.get(key)
            if hit is not None:
                self._kept.move_to_end(key)
        if hit is not None:
            status, headers, body = hit
            start_response(status, list(headers))
            if self.observe is not None:
                self.observe(time.perf_counter() - started)
            return [body]
        return self._miss(key, environ, start_response)

    def _miss(
        self, key: tuple[str, bool], environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            seen["status"], seen["headers"] = status, headers
            return start_response(status, headers, *exc_info)

        result = self.app(environ, capture)
        headers = seen.get("headers") or []
        keep = seen.get("status", "").startswith("200 ") and any(
            name.lower() == "cache-control" and IMMUTABLE in value for name, value in headers
        )
        if not keep:
            return result
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        self._keep(key, (seen["status"], list(headers), body))
        return [body]

    def _keep(self, key: tuple[str, bool], value: tuple[str, list[tuple[str, str]], bytes]) -> None:
        size = len(value[2]) + len(key[0]) + 512
        if size > self.capacity:
            return
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                self._bytes -= len(old[2]) + len(key[0]) + 512
            self._kept[key] = value
            self._bytes += size
            while self._bytes > self.capacity:
                (path, _), dropped = self._kept.popitem(last=False)
                self._bytes -= len(dropped[2]) + len(path) + 512
