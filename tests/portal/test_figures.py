"""The registry's maps and charts on the server: a project's location as GeoJSON with the
coordinates it was registered with, in words in both languages; the supply and retirements by
month (entries dated by patching the clock the ledger reads), with month boundaries that a stale
cache cannot shift; the SVG charts and their tables; query counts that do not grow with rows."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from unittest import mock

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from ledger import services
from portal import charts, figures, geo, maps
from tests import factories

UTC = dt.UTC


def at(year: int, month: int, day: int):
    """The ledger's clock set to noon UTC of that day while the block runs."""
    return mock.patch(
        "ledger.services.append.timezone.now",
        return_value=dt.datetime(year, month, day, 12, tzinfo=UTC),
    )


def retire(world: factories.World, batch, kg: int) -> None:
    services.credit_retire(
        actor=world.dev,
        batch=batch.pk,
        account=world.dev_account.pk,
        quantity=kg,
        beneficiary="Ningbo Coastal Energy",
        purpose="Offsetting",
        jurisdiction="CN-ZJ",
    )


@pytest.fixture
def history(db) -> factories.World:
    """Issued 1,000 t in February 2026 and 500 t in April; retired 200 t in February and 300 t
    in April (and nothing in March or May)."""
    with at(2026, 1, 10):
        world = factories.World()
    with at(2026, 2, 15):
        first = world.issue(1_000_000, year=2024, share_bp=0)
    with at(2026, 2, 20):
        retire(world, first, 200_000)
    with at(2026, 4, 3):
        second = world.issue(500_000, year=2025, share_bp=0)
    with at(2026, 4, 10):
        retire(world, second, 100_000)
        retire(world, first, 200_000)
    return world


NOW = dt.datetime(2026, 5, 5, tzinfo=UTC)


# ---- geometry --------------------------------------------------------------------------------


POLYGON = {
    "type": "Polygon",
    "coordinates": [
        [["121.80", "29.40"], ["121.90", "29.40"], ["121.90", "29.50"], ["121.80", "29.40"]]
    ],
}


def test_a_location_becomes_geojson_with_the_registered_digits_as_numbers():
    text = maps.geometry_text(POLYGON)
    assert text == (
        '{"type":"Polygon","coordinates":'
        "[[[121.80,29.40],[121.90,29.40],[121.90,29.50],[121.80,29.40]]]}"
    )
    assert json.loads(text)["coordinates"][0][2] == [121.9, 29.5]
    assert maps.geometry_text({"type": "Point", "coordinates": ["-05.5", 3]}) == (
        '{"type":"Point","coordinates":[-5.5,3]}'
    )
    assert maps.geometry_text({"type": "Point", "coordinates": ["x", "1"]}) is None
    assert maps.geometry_text({"type": "Circle", "coordinates": [1, 2]}) is None


def test_a_marker_goes_on_a_point_or_the_middle_of_a_shape():
    assert geo.marker_point({"type": "Point", "coordinates": ["110.4", "21.2"]}) == (
        Decimal("110.4"),
        Decimal("21.2"),
    )
    assert geo.marker_point(POLYGON) == (Decimal("121.85"), Decimal("29.45"))
    assert geo.marker_point({"type": "Point", "coordinates": []}) is None


def test_a_location_in_words_in_both_languages():
    point = {"type": "Point", "coordinates": ["121.83", "-29.470"]}
    with translation.override("en"):
        assert maps.location_words(point) == "A point at 29.47° S, 121.83° E."
        assert maps.location_words(POLYGON) == (
            "An area centred on 29.45° N, 121.85° E, from 29.4° N, 121.8° E to 29.5° N, 121.9° E."
        )
    with translation.override("zh-hans"):
        assert maps.location_words(point) == "一个点\uff0c位于南纬 29.47°\uff0c东经 121.83°。"
        assert "北纬 29.45°\uff0c东经 121.85°" in maps.location_words(POLYGON)


# ---- over time -------------------------------------------------------------------------------


def test_supply_and_retirements_are_counted_in_the_month_of_their_entries(history):
    periods = figures.registry_timeline(now=NOW)
    assert [(p.label, p.issued, p.retired) for p in periods] == [
        ("2026-02", 1_000_000, 200_000),
        ("2026-03", 0, 0),
        ("2026-04", 500_000, 300_000),
        ("2026-05", 0, 0),
    ]


def test_the_month_boundaries_come_from_the_cache_and_a_wrong_one_is_found_again(history):
    cache.clear()
    cold = figures.registry_timeline(now=NOW)
    with CaptureQueriesContext(connection) as q:
        assert figures.registry_timeline(now=NOW) == cold
    # The issuances, the boundaries' check, the sums; and the ledger's size, as May's boundary
    # (no entry in May yet) is past the last entry.
    assert len(q.captured_queries) == 4
    # A boundary cached by another database (or before a restore) is checked, not believed.
    start = "2026-04-01T00:00:00.000000Z"
    cache.set(figures._cache_key(start), 1, None)
    assert figures.registry_timeline(now=NOW) == cold
    assert cache.get(figures._cache_key(start)) != 1


def test_more_retirements_cost_no_more_queries(history):
    figures.registry_timeline(now=NOW)
    with CaptureQueriesContext(connection) as before:
        figures.registry_timeline(now=NOW)
    batch = history.project.batches.first()
    with at(2026, 4, 20):
        for _ in range(5):
            retire(history, batch, 1_000)
    figures.registry_timeline(now=NOW)  # the new entries move no past month's boundary
    with CaptureQueriesContext(connection) as after:
        periods = figures.registry_timeline(now=NOW)
    assert len(after.captured_queries) == len(before.captured_queries)
    assert periods[2].retired == 305_000


def test_more_than_three_years_are_counted_by_year(history):
    periods = figures.registry_timeline(now=dt.datetime(2030, 1, 2, tzinfo=UTC))
    assert [(p.label, p.issued, p.retired) for p in periods] == [
        ("2026", 1_500_000, 500_000),
        ("2027", 0, 0),
        ("2028", 0, 0),
        ("2029", 0, 0),
        ("2030", 0, 0),
    ]


def test_nothing_issued_is_no_timeline(db):
    assert figures.registry_timeline(now=NOW) == []


# ---- the charts ------------------------------------------------------------------------------


def test_the_timeline_chart_has_a_title_a_description_and_a_bar_per_figure(history):
    with translation.override("en"):
        svg = str(charts.timeline_svg(figures.registry_timeline(now=NOW)))
    assert '<title id="timeline-title">Credits issued and retired over time</title>' in svg
    assert "From 2026-02 to 2026-05: 1,500 t issued and 500 t retired." in svg
    bars = re.findall(
        r'class="bar-(issued|retired)"[^>]*data-period="([^"]+)" data-kg="(\d+)"', svg
    )
    assert ("issued", "2026-02", "1000000") in bars and ("retired", "2026-04", "300000") in bars
    assert len(bars) == 8
    assert "<title>2026-04: Retired 300 t</title>" in svg
    # The tallest bar reaches the axis top (1,000 t): the y axis is labelled with it.
    assert ">1,000 t</text>" in svg


def test_the_composition_chart_splits_each_bar_into_retired_cancelled_and_the_rest():
    rows = [
        {"key": "mangrove", "issued": 900_000, "retired": 300_000, "cancelled": 100_000,
         "remaining": 500_000, "batches": 2},
        {"key": "seagrass", "issued": 100_000, "retired": 0, "cancelled": 0,
         "remaining": 100_000, "batches": 1},
    ]  # fmt: skip
    with translation.override("zh-hans"):
        svg = str(charts.composition_svg(rows, chart_id="eco", title="T", name_of=str))
    widths = [
        float(w) for w in re.findall(r'class="bar-\w+" x="[\d.]+" y="\d+" width="([\d.]+)"', svg)
    ]
    # 900 t of an axis of 1,000 t over 536 units: 160.8 + 53.6 + 268.0; then 53.6.
    assert widths == [160.8, 53.6, 268.0, 53.6]
    assert ">mangrove · 900 吨</text>" in svg
    assert "300 吨</title>" in svg


# ---- the pages -------------------------------------------------------------------------------


def test_the_statistics_page_shows_each_chart_with_its_table(history, client):
    r = client.get("/registry/statistics/")
    assert r.status_code == 200
    html = r.content.decode()
    assert "unsafe-inline" not in r["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and " style=" not in html
    for chart in ("timeline", "by-ecosystem", "by-jurisdiction"):
        assert f'aria-labelledby="{chart}-title {chart}-desc"' in html
    assert re.search(r'<th scope="row">2026-02</th><td class="num">1,000</td>', html)
    cells = '<td class="num">1,500</td><td class="num">500</td><td class="num">0</td>'
    assert cells + '<td class="num">1,000</td>' in html
    zh = client.get("/registry/statistics/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "按月签发与注销" in zh and "吨" in zh


def test_the_statistics_page_costs_the_same_queries_with_more_rows(history, client):
    client.get("/registry/statistics/")
    with CaptureQueriesContext(connection) as before:
        client.get("/registry/statistics/")
    other = factories.project(history.registry, history.developer, ecosystem="seagrass",
                              jurisdiction="CN-SD")  # fmt: skip
    for year in (2019, 2020):
        b = factories.batch(other, 10_000, year=year, holder=history.dev_account, share_bp=0)
        retire(history, b, 1_000)
    client.get("/registry/statistics/")
    with CaptureQueriesContext(connection) as after:
        client.get("/registry/statistics/")
    assert len(after.captured_queries) == len(before.captured_queries)


def test_the_home_page_draws_the_timeline_and_links_to_the_statistics(history, client):
    html = client.get("/").content.decode()
    assert 'id="home-timeline"' in html and 'href="/registry/statistics/"' in html


def test_a_project_page_carries_its_shape_for_the_map_and_says_where_it_is(db, client):
    world = factories.World()
    p = factories.project(world.registry, world.developer, location=POLYGON, jurisdiction="CN-ZJ")
    r = client.get(f"/registry/projects/{p.code}/")
    html = r.content.decode()
    m = re.search(r'data-map="project" data-geojson="([^"]+)"', html)
    assert m is not None
    feature = json.loads(m.group(1).replace("&quot;", '"'))
    assert feature["geometry"]["type"] == "Polygon"
    assert feature["geometry"]["coordinates"][0][0] == [121.8, 29.4]
    assert feature["properties"]["url"] == f"/registry/projects/{p.code}/"
    assert "An area centred on 29.45° N, 121.85° E" in html
    assert f'href="/registry/projects/{p.code}/location.geojson"' in html
    assert "vendor/leaflet/leaflet.css" in html and "js/map.js" in html

    g = client.get(f"/registry/projects/{p.code}/location.geojson")
    assert g["Content-Type"] == "application/geo+json"
    assert json.loads(g.content)["geometry"]["coordinates"][0][1] == [121.9, 29.4]
    assert client.get("/registry/projects/NOPE/location.geojson").status_code == 404


def test_the_project_map_lists_every_project_with_a_marker_and_in_words(db, client):
    world = factories.World()
    factories.project(
        world.registry, world.developer, location=POLYGON, name="Xiangshan", name_zh="象山"
    )
    r = client.get("/registry/map/")
    html = r.content.decode()
    assert "unsafe-inline" not in r["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and " style=" not in html
    m = re.search(r'data-map="overview" data-geojson="([^"]+)"', html)
    assert m is not None
    markers = json.loads(m.group(1).replace("&quot;", '"'))["features"]
    assert {f["properties"]["name"] for f in markers} == {world.project.name, "Xiangshan"}
    xs = next(f for f in markers if f["properties"]["name"] == "Xiangshan")
    assert xs["geometry"] == {"type": "Point", "coordinates": [121.85, 29.45]}
    assert "A point at 21.2° N, 110.4° E." in html
    everything = json.loads(client.get("/registry/map/projects.geojson").content)
    assert len(everything["features"]) == 2
    zh = client.get("/registry/map/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "项目地图" in zh and "北纬 21.2°\uff0c东经 110.4°" in zh
    m = re.search(r'data-map="overview" data-geojson="([^"]+)"', zh)
    assert m is not None
    names = {
        f["properties"]["name"] for f in json.loads(m.group(1).replace("&quot;", '"'))["features"]
    }
    assert "象山" in names and ">象山</a>" in zh
