"""The registry integration API (``/api/v1/``): one module per area, each with its own
``urlpatterns``, composed in ``ledger/apis/urls.py``."""

from __future__ import annotations

from .errors import exception_handler

__all__ = ["exception_handler"]
