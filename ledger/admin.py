"""Everything is visible; nothing ledger-backed is editable. Changes go through services."""

from __future__ import annotations
