from __future__ import annotations

from django.urls import path

from . import views

app_name = "ledger"
urlpatterns = [
    path("ledger/checkpoint", views.checkpoint_latest, name="checkpoint-latest"),
    path("ledger/verifier-keys", views.verifier_keys, name="verifier-keys"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
]
