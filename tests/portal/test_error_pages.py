"""The 404, 403, 400 and 500 pages with DEBUG off: in the site's style and the reader's
language, no traceback or internal detail, and the 500 page without the database."""

from __future__ import annotations

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import translation

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.urls("tests.portal.error_urls"),
]


def visitor(language: str = "en") -> Client:
    c = Client(raise_request_exception=False)
    c.cookies["django_language"] = language
    return c


@override_settings(DEBUG=False)
@pytest.mark.parametrize(
    ("language", "lang", "title"),
    [("en", "en", "Page not found"), ("zh-hans", "zh-Hans", "页面不存在")],
)
def test_a_missing_page_is_the_sites_404_in_the_readers_language(language, lang, title):
    r = visitor(language).get("/registry/projects/NO-SUCH-PROJECT/")
    assert r.status_code == 404
    html = r.content.decode()
    assert f'<html lang="{lang}">' in html
    assert f"<h1>{title}</h1>" in html
    assert 'href="/static/portal/site.css"' in html or "portal/site.css" in html
    assert 'class="site"' in html  # the site's header and footer
    assert "NO-SUCH-PROJECT" not in html.split("<main")[1].split("</main>")[0]
    assert "Content-Security-Policy" in r.headers


@override_settings(DEBUG=False)
@pytest.mark.parametrize(
    ("language", "title"),
    [("en", "Something went wrong on our side"), ("zh-hans", "我们这边出了问题")],
)
def test_a_failing_view_is_the_sites_500_without_a_traceback(language, title):
    r = visitor(language).get("/boom/")
    assert r.status_code == 500
    html = r.content.decode()
    assert f"<h1>{title}</h1>" in html
    assert "portal/site.css" in html
    for leak in ("Traceback", "RuntimeError", "SECRET", "/work/main", "views.py"):
        assert leak not in html


@override_settings(DEBUG=False)
def test_the_apis_500_stays_json():
    r = visitor().get("/api/v1/boom/")
    assert r.status_code == 500
    assert r.json()["code"] == "server_error"


def test_the_500_and_400_pages_render_without_a_request_or_the_database():
    """Django renders them with an empty context (no context processor runs): they must not
    need the database, which may be why they are shown."""
    with CaptureQueriesContext(connection) as queries, translation.override("zh-hans"):
        for name in ("500.html", "400.html"):
            html = render_to_string(name)
            assert '<html lang="zh-Hans">' in html
            assert "登记簿" in html
    assert len(queries) == 0


@override_settings(DEBUG=False)
def test_an_audit_page_refused_to_a_non_auditor_is_the_sites_403():
    from django.contrib.auth import get_user_model

    from ledger.models import Membership, Role
    from tests import factories

    user = get_user_model().objects.create_user("b", "b@example.org", "pw-long-enough-1")
    Membership.objects.create(user=user, organization=factories.organization(Role.BIDDER))
    c = visitor("zh-hans")
    c.force_login(user)
    r = c.get("/audit/ledger/")
    assert r.status_code == 403
    html = r.content.decode()
    assert "<h1>您无权打开此页面</h1>" in html
    assert 'action="/i18n/setlang/"' in html  # the whole site's header, language switch too


def test_the_language_switch_is_one_button_per_other_language(client):
    r = client.get("/registry/projects/")
    html = r.content.decode()
    assert 'name="language" value="zh-hans" lang="zh-Hans">简体中文</button>' in html
    assert 'value="en"' not in html  # the page is in English already
    assert "<select" not in html.split('class="language"')[1].split("</form>")[0]
    r = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/registry/projects/"})
    assert r.status_code == 302 and r["Location"] == "/registry/projects/"
    html = client.get("/registry/projects/").content.decode()
    assert 'name="language" value="en" lang="en">English</button>' in html
