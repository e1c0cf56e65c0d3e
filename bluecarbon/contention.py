"""A write the database gave up on against concurrent ones, for every way in: the API's
operations (``ledger/apis/base.py``, ``errors.py``) and the portal's forms alike.

* ``retrying(run)``: ``run`` opens the outermost transaction; a deadlock's victim or a
  serialization failure is run again from the start, at most ``ATTEMPTS`` times in all.
  ``durably(write)`` is ``write`` in ``atomic(durable=True)``, so retried: a form's write.
* What is left (the same failure on the last attempt, a lock wait past ``lock_timeout``, a
  busy SQLite file) applied nothing and may succeed when sent again: ``contended(exc)``. The
  API answers it 503 in its JSON error shape (``ledger/apis/errors.py``); any other view's
  reaches ``ContentionMiddleware``, which answers the site's 503 page (``templates/503.html``)
  in the reader's language, or JSON to a request asking for it (the rooms' script, ``/api/``).
  Both with ``Retry-After``, never the 500 page.

Like ``errors.py``, this imports nothing of the apps: both layers above it use it."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from .errors import ServiceUnavailable

ATTEMPTS = 3  # a write's transaction, run at most this many times

# PostgreSQL's SQLSTATEs (Appendix A) for a transaction that lost against concurrent ones and
# was rolled back whole: running it again from the start is the remedy PostgreSQL documents
# ("Serialization Failure Handling", §13.5 of the PostgreSQL 15 manual).
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
# A lock wait past lock_timeout: the holder is slow, not in a cycle; running it again at once
# would only wait again, so it is answered 503 without a retry.
_CONTENDED_SQLSTATES = RETRYABLE_SQLSTATES | {"55P03"}  # lock_not_available
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6  # primary result codes (the low byte of extended ones)

T = TypeVar("T")

logger = logging.getLogger(__name__)


def _sqlstate(exc: BaseException) -> str | None:
    # Django re-raises the driver's error as its own, with the driver's as the cause.
    return getattr(exc.__cause__, "sqlstate", None)


def retryable(exc: BaseException) -> bool:
    """A database error that running the whole transaction again may cure."""
    return isinstance(exc, DatabaseError) and _sqlstate(exc) in RETRYABLE_SQLSTATES


def contended(exc: BaseException) -> bool:
    """A database error from contention with other transactions, not from this request or
    from our code: the client should send the request again later."""
    if not isinstance(exc, DatabaseError):
        return False
    if _sqlstate(exc) in _CONTENDED_SQLSTATES:
        return True
    code = getattr(exc.__cause__, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)


def retrying(run: Callable[[], T]) -> T:
    """Run ``run``, which opens the outermost transaction (``atomic(durable=True)``, or an
    ``atomic()`` nothing encloses), again when the database rolled that transaction back as a
    deadlock's victim or a serialization failure. The request is then as if it had not
    arrived: nothing of it was committed (nor an API request's Idempotency-Key record, so the
    key still applies it at most once) and its on-commit hooks were dropped. So ``run`` does
    nothing outside the database that a second run would repeat, other than what is the same
    done twice (a file stored by its digest). What the last attempt still meets is raised:
    ``contended`` says it is a 503."""
    attempt = 1
    while True:
        try:
            return run()
        except DatabaseError as exc:
            # Inside a caller's transaction (a test's), only a savepoint rolled back: the
            # caller's transaction is aborted and nothing can run in it again.
            if attempt == ATTEMPTS or not retryable(exc) or connection.in_atomic_block:
                raise
            logger.info("attempt %d rolled back (%s); running it again", attempt, exc.__cause__)
        # The other side of a deadlock still holds its locks for a moment; spread the retries.
        time.sleep(random.uniform(0.005, 0.025) * attempt)
        attempt += 1


def durably(write: Callable[[], T]) -> T:
    """``write()`` in the outermost transaction, run again from the start where the database
    rolled it back against concurrent ones (``retrying``): a form's call of a write service."""

    def once() -> T:
        with transaction.atomic(durable=True):
            return write()

    return retrying(once)


class ContentionMiddleware:
    """What a view (not the API's operations, whose handler answers them) raised from contention
    in the database: 503 with ``Retry-After`` instead of the 500 page. The page is
    ``_error_bare.html``'s, like the 500 page's, rendered without the request: the database
    is why it is shown, so nothing on it may read the database."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not contended(exc):
            return None
        # Logged for operators, as the API's are: under ledger/locks.py's order, even a deadlock
        # that outlasts the retries should not happen, and lock timeouts say a writer is slow.
        logger.warning("503 after database contention: %s", str(exc).splitlines()[0])
        api = request.path.startswith("/api/")
        # The API speaks English; the portal, its reader's language (LocaleMiddleware's).
        busy = ServiceUnavailable(
            None if api else _("The registry is busy and recorded nothing: try again shortly.")
        )
        answer: HttpResponse
        if api or "application/json" in request.headers.get("Accept", ""):
            answer = JsonResponse(busy.as_dict(), status=busy.status_code)
        else:
            answer = HttpResponse(render_to_string("503.html"), status=busy.status_code)
        answer["Retry-After"] = str(busy.retry_after)
        return answer
