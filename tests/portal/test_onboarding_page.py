"""Issue 13, part 3: the auction page shows a signed-in bidder where its application and its
deposit stand, in English and in Chinese, and lets it apply without JavaScript."""

from __future__ import annotations

import re

import pytest

from auctions import onboarding
from auctions.models import Application
from ledger.models import Role
from tests import factories
from tests.auctions.conftest import OPERATOR, Market
from tests.portal.test_pages import user_for


@pytest.fixture
def market(db) -> Market:
    return Market()


def _standing(html: str) -> str:
    found = re.search(r'<section aria-labelledby="standing-h".*?</section>', html, re.S)
    assert found, "no application and deposit section"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(0)))


def test_a_bidder_applies_on_the_page_and_sees_its_application_and_deposit(market):
    m = market
    a = m.auction(deposit_required=3_000_000)
    org = factories.organization(Role.BIDDER)
    page = user_for(org, "newcomer")
    text = _standing(page.get(f"/auctions/{a.pk}/").content.decode())
    assert "Application none" in text
    assert "Your deposit none recorded · required 30,000.00 CNY" in text
    assert "You may bid no: apply to bid in this auction Apply to bid" in text
    r = page.post(f"/auctions/{a.pk}/apply")
    assert r.status_code == 302
    assert Application.objects.get(auction=a, bidder=org).state == Application.State.PENDING
    m.deposit(a, org, 3_000_000)
    text = _standing(page.get(f"/auctions/{a.pk}/").content.decode())
    assert "Awaiting the decision" in text
    assert "Your deposit 30,000.00 CNY (Held)" in text
    assert "Apply to bid" not in text  # pending: nothing to apply for
    assert "only an approved application admits you" in text
    onboarding.application_refuse(
        actor=OPERATOR, auction=a.pk, bidder=org.pk, reason="missing KYC documents"
    )
    html = page.get(f"/auctions/{a.pk}/").content.decode()
    assert "Refused: missing KYC documents" in _standing(html)
    assert 'id="bid-form"' not in html  # not admitted: no bid form
    onboarding.application_submit(actor=OPERATOR, auction=a.pk, bidder=org.pk)
    onboarding.application_approve(actor=OPERATOR, auction=a.pk, bidder=org.pk)
    html = page.get(f"/auctions/{a.pk}/").content.decode()
    assert "You may bid yes" in _standing(html) and 'id="bid-form"' in html
    # In Chinese.
    page.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    text = _standing(page.get(f"/auctions/{a.pk}/").content.decode())
    assert "您的竞买申请与保证金 竞买申请 已批准 您的保证金 30,000.00 元" in text
    assert "可否出价 可以" in text


def test_a_refused_apply_says_why_and_changes_nothing(market):
    m = market
    a = m.auction()
    page = user_for(m.bidders[0], "bidder")
    page.post(f"/auctions/{a.pk}/apply")
    r = page.post(f"/auctions/{a.pk}/apply", follow=True)
    assert "the application is pending" in r.content.decode()
    assert Application.objects.filter(auction=a).count() == 1
