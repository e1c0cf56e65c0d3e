"""Every model is either compared with the ledger's replay, part of the ledger itself, or
declared not derived with a reason: a new table cannot slip past ledger_verify unnoticed."""

from __future__ import annotations

import importlib

from django.apps import apps

OURS = ("ledger", "auctions", "listings", "portal")


def declared() -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for app in OURS:
        module = importlib.import_module(f"{app}.derived")
        for kind in ("COMPARED", "CHECKED", "NOT_DERIVED"):
            for label, reason in getattr(module, kind).items():
                assert label not in found, f"{label} is declared twice"
                found[label] = (kind, reason)
    return found


def test_every_model_is_declared_once_with_a_reason():
    models = {m._meta.label for m in apps.get_models() if m._meta.app_label in OURS}
    found = declared()
    assert sorted(models - set(found)) == [], "models neither compared nor declared not derived"
    assert sorted(set(found) - models) == [], "declared models that do not exist"
    assert all(reason.strip() for _, reason in found.values())


def test_an_app_declares_only_its_own_models():
    for label in declared():
        app = label.split(".")[0]
        module = importlib.import_module(f"{app}.derived")
        assert any(label in getattr(module, k) for k in ("COMPARED", "CHECKED", "NOT_DERIVED"))
