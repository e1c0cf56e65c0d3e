from __future__ import annotations

from django.apps import apps
from django.contrib.staticfiles.finders import get_finders


def collected_paths() -> set[str]:
    """What collectstatic would copy: every finder's files minus the configured patterns."""
    patterns = apps.get_app_config("staticfiles").ignore_patterns
    return {path for finder in get_finders() for path, _storage in finder.list(patterns)}


def test_collectstatic_publishes_the_hpke_bundle_and_seal_js_but_not_their_build_folder():
    paths = collected_paths()

    assert "auctions/vendor/hpke/hpke-core.min.js" in paths
    assert "auctions/vendor/hpke/LICENSE" in paths
    assert "auctions/js/seal.js" in paths
    assert [p for p in paths if "/build/" in p or "node_modules" in p] == []


def test_collectstatic_publishes_the_shamir_bundle_and_its_licence_but_not_its_build_folder():
    paths = collected_paths()

    assert "auctions/vendor/shamir/shamir.min.js" in paths
    assert "auctions/vendor/shamir/LICENSE" in paths
    assert [p for p in paths if p.startswith("auctions/vendor/shamir/build/")] == []
