from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path, register_converter

from . import (
    calendar_views,
    clock_room,
    document_views,
    figure_views,
    listings,
    room,
    trustee_views,
    two_factor_views,
    views,
)
from . import registry as register


class IdConverter:
    """A database id: digits, at most 18 of them, so it fits a bigint (a longer one is a 404,
    not an overflow in the database)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

app_name = "portal"
urlpatterns = [
    path("", views.home, name="home"),
    # The public register's lists and exports, and the batch pages (registry.py).
    *register.urlpatterns,
    path("registry/projects/<str:code>/", views.project, name="project"),
    path(
        "registry/projects/<str:code>/documents/attach/",
        document_views.attach,
        name="project-document-attach",
    ),
    # The projects on a map, each project's location as GeoJSON, the charts (figure_views.py).
    path("registry/map/", figure_views.project_map, name="project-map"),
    path(
        "registry/map/projects.geojson",
        figure_views.project_map_geojson,
        name="project-map-geojson",
    ),
    path(
        "registry/projects/<str:code>/location.geojson",
        figure_views.project_location,
        name="project-location",
    ),
    path("registry/statistics/", figure_views.statistics, name="statistics"),
    # The calendar of auctions, its iCalendar feed, and each result's report (calendar_views).
    path("auctions/", calendar_views.auctions, name="auctions"),
    path("auctions/calendar.ics", calendar_views.auctions_ics, name="auctions-ics"),
    path("auctions/<id:pk>/result/", calendar_views.result_report, name="auction-result"),
    path("auctions/<id:pk>/result.csv", calendar_views.result_csv, name="auction-result-csv"),
    # An English or clock auction's page is its live room (room.py, clock_room.py); the sealed
    # formats' is views'.
    path("auctions/<id:pk>/", room.auction, name="auction"),
    path("auctions/<id:pk>/room.json", room.state, name="auction-room-state"),
    path("auctions/<id:pk>/bid", room.bid, name="auction-bid"),
    # A clock auction's room (clock_room.py): its poll and its round bids.
    path("auctions/<id:pk>/clock.json", clock_room.state, name="auction-clock-state"),
    path("auctions/<id:pk>/round-bid", clock_room.bid, name="auction-round-bid"),
    path("auctions/<id:pk>/audit/", views.auction_audit, name="auction-audit"),
    path("auctions/<id:pk>/apply", views.apply, name="apply"),
    path("auctions/<id:pk>/bids/<id:bid>/withdraw", views.withdraw, name="withdraw"),
    path(
        "auctions/<id:pk>/bids/<id:bid>/receipt-v<id:version>.txt",
        views.receipt,
        name="receipt",
    ),
    path("listings/", listings.board, name="listings"),
    path("listings/<id:pk>/", listings.listing, name="listing"),
    path("listings/<id:pk>/take", listings.take, name="listing-take"),
    path("listings/<id:pk>/withdraw", listings.withdraw, name="listing-withdraw"),
    path("account/purchases/", listings.purchases, name="purchases"),
    path("registry/certificates/<str:certificate>/", views.certificate, name="certificate"),
    path("account/", views.dashboard, name="dashboard"),
    path("account/retire/", views.retire, name="retire"),
    # A trustee's auctions and the release of its key after the close (trustee_views.py).
    path("account/trustee/", trustee_views.auctions, name="trustee"),
    path("account/trustee/auctions/<id:pk>/", trustee_views.release, name="trustee-release"),
    path("account/signup/", views.signup, name="signup"),
    path("account/login/", views.sign_in, name="login"),
    path("account/login/code/", two_factor_views.sign_in_code, name="login-code"),
    path("account/two-factor/", two_factor_views.two_factor_page, name="two-factor"),
    path("account/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/ledger/", views.ledger, name="ledger"),
    path("audit/ledger/<id:seq>/", views.entry, name="entry"),
    path("audit/checkpoints/", views.checkpoints, name="checkpoints"),
    path("audit/verification/", views.verification, name="verification"),
    path("audit/verification/start", views.verification_start, name="verification-start"),
    path("audit/verification/<id:pk>/", views.verification_run, name="verification-run"),
    path(
        "audit/verification/<id:pk>/status",
        views.verification_status,
        name="verification-status",
    ),
    path(
        "audit/verification/<id:pk>/report.txt",
        views.verification_report,
        name="verification-report",
    ),
    path("audit/export.tar", views.export_download, name="export"),
    path("audit/verifier-keys.txt", views.verifier_keys, name="verifier-keys"),
    path(
        "audit/report-verifier-keys.txt",
        views.report_verifier_keys,
        name="report-verifier-keys",
    ),
    path(
        "audit/receipt-verifier-keys.txt",
        views.receipt_verifier_keys,
        name="receipt-verifier-keys",
    ),
]
