"""Numbers and names as people read them (issue 17, section 2): exact tonnes with thousands
separators, money with the currency's decimals, units in the reader's language, plurals, people
and organizations by name (auditors also see the ledger's id), and the retirement form's errors
in words and tonnes. The formatting core is pure and is hammered with hypothesis."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import translation
from hypothesis import given
from hypothesis import strategies as st

from ledger import services
from ledger.core.quantity import MAX_KG, MAX_MINOR, parse_money, parse_tonnes
from ledger.models import LedgerEntry, Membership, Role
from portal.names import Names, local_name
from portal.numbers import group_digits, money_text, plain, tonnes_text
from portal.templatetags import portal_format as f
from tests import factories
from tests.auctions.conftest import Market
from tests.factories import OPERATOR
from tests.portal.test_pages import user_for

NB = "\u5b81\u6ce2\u6ee8\u6d77\u80fd\u6e90"  # a bidder's name in Chinese
GROUPED = re.compile(r"^-?\d{1,3}(,\d{3})*(\.\d+)?$")


# ---- the pure core ------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=MAX_KG))
def test_tonnes_round_trip_exactly_and_are_grouped_by_threes(kg):
    text = tonnes_text(kg)
    assert GROUPED.match(text), text
    assert parse_tonnes(plain(text), allow_zero=True) == kg  # nothing rounded, ever
    frac = text.partition(".")[2]
    assert len(frac) <= 3 and not frac.endswith("0")  # the kilograms, trailing zeros trimmed


@given(st.integers(min_value=0, max_value=MAX_MINOR), st.sampled_from(["CNY", "USD", "JPY"]))
def test_money_round_trips_exactly_with_all_of_the_currencys_decimals(minor, currency):
    text = money_text(minor, currency)
    assert GROUPED.match(text), text
    assert parse_money(plain(text), currency) == minor
    assert len(text.partition(".")[2]) == (0 if currency == "JPY" else 2)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=0, max_value=10**9))
def test_grouping_twice_changes_nothing(value):
    once = group_digits(str(value))
    assert group_digits(once) == once


def test_the_examples_people_read():
    assert tonnes_text(2_340_100) == "2,340.1"
    assert tonnes_text(2_340_000) == "2,340"
    assert tonnes_text(1) == "0.001"
    assert tonnes_text(0) == "0"
    assert tonnes_text(-1_500) == "-1.5"
    assert money_text(24_805_060, "CNY") == "248,050.60"
    assert money_text(5, "CNY") == "0.05"
    assert money_text(1_234_567, "JPY") == "1,234,567"


@pytest.mark.parametrize("bad", [1.5, "1500", True, None])
def test_a_float_or_anything_but_an_integer_is_refused(bad):
    with pytest.raises(TypeError):
        tonnes_text(bad)
    with pytest.raises(TypeError):
        money_text(bad, "CNY")


# ---- the filters, in both languages ---------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "qty", "price", "amount", "colon"),
    [
        ("en", "2,340.1 t", "106.00 CNY/t", "248,050.60 CNY", ": "),
        ("zh-hans", "2,340.1 吨", "106.00 元/吨", "248,050.60 元", "\uff1a"),
    ],
)
def test_units_are_in_the_readers_language(lang, qty, price, amount, colon):
    with translation.override(lang):
        assert f.qty(2_340_100) == qty
        assert f.price(10_600, "CNY") == price
        assert f.amount(24_805_060, "CNY") == amount
        assert f.price(10_600, "USD").startswith("106.00 USD/")  # other currencies: ISO code
        assert f.colon() == colon
    assert f.tonnes(2_340_100) == "2,340.1"  # no unit: the page's column or sentence says it
    assert f.money(24_805_060, "CNY") == "248,050.60"
    assert f.lot_tonnes(4, 2_500) == "10"
    assert f.grouped("248050.60") == f.grouped("248,050.60") == "248,050.60"


def test_a_short_hash_has_its_ends_and_the_whole_value_on_demand():
    digest = "28c0d317e9bb808fcf9f97319a1ace017637157ef4124fba817e3460ba6a4bfb"
    ctx = f.hash_(digest)
    assert ctx["short"] == "28c0d317\u20264bfb" and ctx["value"] == digest
    assert f.hash_("abc")["short"] == "abc"  # nothing to shorten


# ---- names ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_pages_names_cost_one_query_per_kind_whatever_the_rows(django_assert_num_queries):
    orgs = [factories.organization(Role.BIDDER) for _ in range(5)]
    clients = [user_for(o, f"person{i}") for i, o in enumerate(orgs)]
    assert clients
    users = list(get_user_model().objects.order_by("pk"))
    actors = [f"user:{u.pk}" for u in users] + ["system:clear", "apikey:nope"]
    with django_assert_num_queries(4):  # users, their memberships, API keys, organizations
        names = Names.of(actors=actors, organizations=[o.pk for o in orgs])
    with django_assert_num_queries(0), translation.override("en"):
        said = [names.actor(a) for a in actors] + [names.organization(o.pk) for o in orgs]
    assert said[0] == f"person0 ({orgs[0].name})"
    assert "System (clear)" in said and "API key nope" in said
    assert said[-1] == orgs[-1].name


@pytest.mark.django_db
def test_a_chinese_name_is_shown_on_chinese_pages_and_the_english_one_otherwise():
    org = factories.organization(Role.BIDDER)
    org.name_zh = "宁波滨海能源"
    with translation.override("zh-hans"):
        assert local_name(org) == "宁波滨海能源"
    with translation.override("en"):
        assert local_name(org) == org.name
    org.name_zh = ""
    with translation.override("zh-hans"):
        assert local_name(org) == org.name  # no Chinese name given: the English one


# ---- pages ----------------------------------------------------------------------------------


@pytest.fixture
def market(db) -> Market:
    return Market()


def zh(client: Client) -> Client:
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    return client


def _retire(page: Client, market: Market, quantity: str):
    return page.post(
        "/account/retire/",
        {
            "holding": f"{market.seller_account.pk}:{market.batch.pk}",
            "quantity": quantity,
            "beneficiary": "Ningbo Coastal Energy",
            "purpose": "2023 emissions",
            "jurisdiction": "CN-ZJ",
        },
    )


def test_the_retirement_forms_errors_are_in_tonnes_and_in_the_readers_language(market):
    seller = user_for(market.seller, "seller")
    before = LedgerEntry.objects.count()
    html = _retire(seller, market, "1.0005").content.decode()
    assert "at most three decimals (one kilogram)" in html and "kg" not in html.split("<main")[1]
    html = _retire(seller, market, "20,000").content.decode()  # more than the 10,000 t held
    assert "This holding has 10,000 t tradable; you asked to retire 20,000 t." in html
    html = _retire(zh(seller), market, "1.0005").content.decode()
    assert "数量最多保留三位小数" in html
    html = _retire(seller, market, "20000").content.decode()
    assert "该持仓可交易数量为 10,000 吨\uff1b您申请注销 20,000 吨。" in html
    assert LedgerEntry.objects.count() == before
    assert _retire(seller, market, "2,000.5").status_code == 302  # grouped input is taken


def test_the_ledger_names_people_and_shows_auditors_the_actor_id(
    market, django_assert_max_num_queries
):
    seller = user_for(market.seller, "seller")
    assert _retire(seller, market, "1.5").status_code == 302
    auditor = user_for(factories.organization(Role.AUDITOR), "auditor")
    html = auditor.get("/audit/ledger/").content.decode()
    uid = f"user:{get_user_model().objects.get(username='seller').pk}"
    row = re.search(r"<td>credit.retire</td>.*?</tr>", html, re.S).group(0)
    assert f'seller ({market.seller.name}) <small class="ledger-id">{uid}</small>' in row
    assert "<td>user:" not in html and "<td>system:" not in html
    seq = LedgerEntry.objects.filter(type="credit.retire").get().seq
    entry = auditor.get(f"/audit/ledger/{seq}/").content.decode()
    assert f"seller ({market.seller.name})" in entry and 'class="copy js-only"' in entry


def test_pages_show_tonnes_and_money_not_kilograms_or_minor_units(market, client):
    a = market.auction(closes_in=3600, title="Numbers lot")
    html = client.get(f"/auctions/{a.pk}/").content.decode()
    assert "minor units" not in html and " kg" not in html
    home = client.get("/").content.decode()
    assert re.search(r"<strong>10,000 t</strong>", home)
    project = client.get(f"/registry/projects/{market.batch.project.code}/").content.decode()
    assert "10,000</td>" in project
    zh_home = zh(client).get("/").content.decode()
    assert "<strong>10,000 吨</strong>" in zh_home
    zh_auction = client.get(f"/auctions/{a.pk}/").content.decode()
    assert "元/吨" in zh_auction and "CNY/t" not in zh_auction


def test_the_auction_audit_page_says_its_rules_in_tonnes_and_prices(market):
    a = market.auction(closes_in=3600, title="Rules lot")
    auditor = user_for(factories.organization(Role.AUDITOR), "auditor")
    html = auditor.get(f"/auctions/{a.pk}/audit/").content.decode()
    assert "minor units" not in html and " kg" not in html
    assert re.search(r"\d+ lots of [\d,.]+ t", html)
    assert re.search(r"[\d,]+\.\d\d CNY/t / [\d,]+\.\d\d CNY/t", html)


@pytest.mark.django_db
def test_people_are_named_with_their_organizations_chinese_name_on_chinese_pages():
    org = services.organization_register(
        actor=OPERATOR, handle="nb-energy", name="Ningbo Energy", name_zh=NB, roles=["bidder"]
    )
    user = get_user_model().objects.create_user("liwei", first_name="Wei", last_name="Li")
    Membership.objects.create(user=user, organization=org)
    names = Names.of(actors=[f"user:{user.pk}"], organizations=[org.pk])
    with translation.override("zh-hans"):
        assert names.actor(f"user:{user.pk}") == f"Wei Li ({NB})"
        assert names.organization(org.pk) == NB
    with translation.override("en"):
        assert names.actor(f"user:{user.pk}") == "Wei Li (Ningbo Energy)"
