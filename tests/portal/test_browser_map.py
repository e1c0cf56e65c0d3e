"""The maps and charts in Debian's Chromium, offline: every request the pages make is routed
through the test, and any to a host other than the live server fails it (and is refused). A
project's shape is drawn on the vendored coastline and fitted; the overview's markers open
their projects, by mouse and by keyboard; in English and in Chinese, on a 390 px phone without
sideways scrolling, with no console error and no CSP violation."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from ledger import services
from tests import factories
from tests.browser import page_problems
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser]

PHONE = {"width": 390, "height": 844}
# A seagrass meadow off Xiangshan, Zhejiang: about 11 km by 11 km.
MEADOW = {
    "type": "Polygon",
    "coordinates": [
        [["121.80", "29.40"], ["121.90", "29.40"], ["121.90", "29.50"], ["121.80", "29.50"],
         ["121.80", "29.40"]]
    ],
}  # fmt: skip


@pytest.fixture
def registry(site: str) -> dict[str, Any]:
    world = factories.World()
    meadow = factories.project(
        world.registry,
        world.developer,
        code="CN-ZJ-XS-002",
        name="Xiangshan seagrass meadow",
        ecosystem="seagrass",
        jurisdiction="CN-ZJ",
        location=MEADOW,
    )
    b = factories.batch(meadow, 50_000, holder=world.dev_account, share_bp=0)
    world.issue(80_000, share_bp=0)
    services.credit_retire(
        actor=world.dev,
        batch=b.pk,
        account=world.dev_account.pk,
        quantity=12_000,
        beneficiary="Ningbo Coastal Energy",
        purpose="Offsetting",
        jurisdiction="CN-ZJ",
    )
    return {"point": world.project, "meadow": meadow}


def _offline(context: Any, site: str) -> list[str]:
    """Route every request of the context: the live server's go on, any other is refused and
    listed."""
    host = urlsplit(site).netloc
    elsewhere: list[str] = []

    def route(r: Any) -> None:
        if urlsplit(r.request.url).netloc == host:
            r.continue_()
        else:
            elsewhere.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return elsewhere


def _no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide"


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", {"zoom_in": "Zoom in", "map": "Project map", "stats": "Registry statistics"}),
        ("zh-hans", {"zoom_in": "放大", "map": "项目地图", "stats": "登记簿统计"}),
    ],
)
def test_the_maps_draw_offline_and_the_markers_open_their_projects(
    browser, site, registry, language, words
):
    context = browser.new_context(
        base_url=site, viewport=PHONE, extra_http_headers={"Accept-Language": language}
    )
    elsewhere = _offline(context, site)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)
    meadow, point = registry["meadow"], registry["point"]

    # The project's polygon on the coastline, fitted: it fills a good part of the map.
    page.goto(f"/registry/projects/{meadow.code}/")
    page.wait_for_selector("#project-map[data-ready=true]")
    assert page.locator("#project-map .leaflet-land-pane path.map-land").count() >= 1
    shape = page.locator("#project-map .leaflet-overlay-pane path.project-shape")
    assert shape.count() == 1
    box, frame = shape.bounding_box(), page.locator("#project-map").bounding_box()
    assert box is not None and frame is not None
    assert box["width"] > frame["width"] / 3 and box["height"] > frame["height"] / 3
    assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"]
    assert (
        page.locator("#project-map .leaflet-control-zoom-in").get_attribute("title")
        == (words["zoom_in"])
    )
    assert page.locator("#location-words").text_content()
    _no_sideways_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"map-project-{language}.png"), full_page=True)

    # A point project: a circle on its position.
    page.goto(f"/registry/projects/{point.code}/")
    page.wait_for_selector("#project-map[data-ready=true]")
    assert page.locator("#project-map path.project-shape").count() == 1

    # The overview: a marker per project, each opening its project.
    page.goto("/registry/map/")
    page.wait_for_selector("#projects-map[data-ready=true]")
    assert page.locator("h1").text_content() == words["map"]
    markers = page.locator("#projects-map .leaflet-marker-icon")
    assert markers.count() == 2
    hrefs = {markers.nth(i).get_attribute("data-href") for i in range(2)}
    assert hrefs == {f"/registry/projects/{p.code}/" for p in (meadow, point)}
    _no_sideways_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"map-overview-{language}.png"), full_page=True)
    page.locator(f'#projects-map .leaflet-marker-icon[alt="{meadow.name} ({meadow.code})"]').click()
    page.wait_for_url(f"**/registry/projects/{meadow.code}/")
    # By keyboard: a marker takes the focus, and Enter opens its project.
    page.goto("/registry/map/")
    page.wait_for_selector("#projects-map[data-ready=true]")
    marker = page.locator(f'#projects-map .leaflet-marker-icon[alt="{point.name} ({point.code})"]')
    marker.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/registry/projects/{point.code}/")

    # The charts: drawn on the server, nothing to load but the page and its stylesheets.
    page.goto("/registry/statistics/")
    assert page.locator("h1").text_content() == words["stats"]
    for chart in ("timeline", "by-ecosystem", "by-jurisdiction"):
        assert page.locator(f"svg#{chart}").is_visible()
    assert page.locator("svg#timeline rect.bar-retired[data-kg='12000']").count() == 1
    _no_sideways_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"statistics-{language}.png"), full_page=True)
    page.goto("/")
    assert page.locator("svg#home-timeline").is_visible()
    _no_sideways_scroll(page)

    context.close()
    assert elsewhere == []
    assert problems == []


def test_a_coastline_from_another_host_is_refused_before_it_leaves(browser, site, registry):
    """The guard behind "offline": were the page pointed at another host's coastline, the CSP
    (connect-src 'self') refuses the request in the browser, and the console says so; the shape
    is drawn all the same. (It also shows that page_problems catches a CSP violation.)"""
    context = browser.new_context(base_url=site, viewport=PHONE)
    elsewhere = _offline(context, site)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)
    code = registry["meadow"].code

    def foreign(r: Any) -> None:
        response = r.fetch()
        html = response.text().replace(
            'data-base="/static/', 'data-base="https://tiles.example.org/static/'
        )
        r.fulfill(response=response, body=html)

    page.route(f"**/registry/projects/{code}/", foreign)
    page.goto(f"/registry/projects/{code}/")
    page.wait_for_selector("#project-map[data-ready]")
    assert page.locator("#project-map").get_attribute("data-ready") == "no-coastline"
    assert page.locator("#project-map path.project-shape").count() == 1
    context.close()
    assert elsewhere == []  # refused in the browser: it never reached the network
    assert any("connect-src" in p and "tiles.example.org" in p for p in problems), problems
