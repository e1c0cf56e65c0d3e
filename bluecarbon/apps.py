from __future__ import annotations

from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig
from django.contrib.staticfiles.apps import StaticFilesConfig as DjangoStaticFilesConfig


class StaticFilesConfig(DjangoStaticFilesConfig):
    # collectstatic publishes what it collects. Each vendored bundle's build/ folder
    # (package.json, lock file, and node_modules after an `npm ci`, esbuild's binary included)
    # is for rebuilding, not serving. fnmatch's '*' also matches '/', so the path pattern covers
    # the whole folder; "node_modules" stops the walk from descending into one anywhere.
    ignore_patterns = [
        *DjangoStaticFilesConfig.ignore_patterns,
        "node_modules",
        "auctions/vendor/hpke/build/*",
        "auctions/vendor/shamir/build/*",
        "portal/vendor/natural-earth/build/*",
    ]


class AdminConfig(DjangoAdminConfig):
    # The admin behind two-factor sign-in (portal/admin_site.py).
    default_site = "portal.admin_site.TwoFactorAdminSite"
