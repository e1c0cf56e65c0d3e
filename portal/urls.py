from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "portal"
urlpatterns = [
    path("", views.home, name="home"),
    path("registry/projects/", views.projects, name="projects"),
    path("registry/projects/<str:code>/", views.project, name="project"),
    path("registry/retirements/", views.retirements, name="retirements"),
    path("auctions/", views.auctions, name="auctions"),
    path("auctions/<int:pk>/", views.auction, name="auction"),
    path("auctions/<int:pk>/audit/", views.auction_audit, name="auction-audit"),
    path("auctions/<int:pk>/bids/<int:bid>/withdraw", views.withdraw, name="withdraw"),
    path(
        "auctions/<int:pk>/bids/<int:bid>/receipt-v<int:version>.txt",
        views.receipt,
        name="receipt",
    ),
    path("registry/certificates/<str:certificate>/", views.certificate, name="certificate"),
    path("account/", views.dashboard, name="dashboard"),
    path("account/retire/", views.retire, name="retire"),
    path("account/signup/", views.signup, name="signup"),
    path(
        "account/login/",
        auth_views.LoginView.as_view(template_name="portal/login.html"),
        name="login",
    ),
    path("account/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/ledger/", views.ledger, name="ledger"),
    path("audit/ledger/<int:seq>/", views.entry, name="entry"),
    path("audit/checkpoints/", views.checkpoints, name="checkpoints"),
    path("audit/verification/", views.verification, name="verification"),
    path("audit/verification/start", views.verification_start, name="verification-start"),
    path("audit/verification/<int:pk>/", views.verification_run, name="verification-run"),
    path(
        "audit/verification/<int:pk>/status",
        views.verification_status,
        name="verification-status",
    ),
    path("audit/verifier-keys.txt", views.verifier_keys, name="verifier-keys"),
]
