"""``python -m bluecarbon_audit``: the same as the ``bluecarbon-audit`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
