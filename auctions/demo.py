"""Demo auctions for ``seed_demo``: the Xiangshan seaweed lot sold by sealed bid and settled,
an open uniform-price auction of Putian oyster credits, and a scheduled Vickrey auction of
Zhanjiang mangrove credits. Everything goes through the services (and so the ledger)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from ledger.actors import Actor
from ledger.core.quantity import parse_money, parse_tonnes

from . import services
from .core import sealing
from .models import stored

DEPOSIT = parse_money("30000.00", "CNY")


def _rules(**rules: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "currency": "CNY",
        "tick": parse_money("1.00", "CNY"),
        "cap_bp": None,
        "deposit_required": DEPOSIT,
        "bid_guarantee": False,
        "tie_rule": "random_order",
        "undersubscribed": "settle",
    }
    return base | rules


def seed_auctions(
    *, op: Actor, bidders: list[Any], seller_accounts: dict[str, Any], batches: dict[str, Any]
) -> None:
    for org in bidders:
        services.bidder_approve(actor=op, organization=org.pk)
    now = timezone.now()

    # Xiangshan: one lot of 2,340.1 t, first price, reserve 30.00 CNY/t.
    lot = parse_tonnes("2340.1")
    xs = services.auction_create(
        actor=op,
        account=seller_accounts["xiangshan"].pk,
        batch=batches["xiangshan"].pk,
        title="Xihu Port seaweed farming sink, 2022 (Xiangshan, Ningbo)",
        format="first_price",
        quantity=lot,
        lot_kg=lot,
        reserve=parse_money("30.00", "CNY"),
        opens_at=now,
        closes_at=now + dt.timedelta(seconds=1),
        **_rules(undersubscribed="cancel"),
    )
    services.auction_schedule(actor=op, auction=xs.pk)
    xs.refresh_from_db()
    prices = {"ningbo-energy": "106.00", "zhejiang-trading": "98.00", "shenzhen-finance": "101.00"}
    for org in bidders:
        services.deposit_record(actor=op, auction=xs.pk, bidder=org.pk, amount=DEPOSIT)
        ciphertext = sealing.seal(
            public_key=stored(xs.public_key, "public key"),
            origin=settings.LEDGER_ORIGIN,
            auction=xs.pk,
            bidder=org.pk,
            tiers=[{"price": parse_money(prices[org.handle], "CNY"), "lots": 1}],
        )
        services.bid_submit(
            actor=Actor(f"org:{org.handle}", org.pk), auction=xs.pk, ciphertext=ciphertext
        )
    # The worker's steps, here in line: wait for the deadline, close, open, clear, settle.
    time.sleep(max(0.0, (xs.closes_at - timezone.now()).total_seconds()) + 0.05)
    services.auction_close(auction=xs.pk)
    services.auction_bids_open(auction=xs.pk, first=0, last=2**62)
    services.auction_clear(auction=xs.pk)
    services.auction_settle(auction=xs.pk)
    for award in xs.awards.all():
        services.award_confirm_payment(actor=op, award=award.pk)

    # Putian oysters: 2,000 t in lots of 1 t, uniform price, open for a week.
    putian = services.auction_create(
        actor=op,
        account=seller_accounts["putian"].pk,
        batch=batches["putian"].pk,
        title="Putian oyster farming sink, 2021: 2,000 t",
        format="uniform",
        quantity=parse_tonnes("2000"),
        lot_kg=parse_tonnes("1"),
        reserve=parse_money("50.00", "CNY"),
        opens_at=now,
        closes_at=now + dt.timedelta(days=7),
        **_rules(cap_bp=2500, tie_rule="pro_rata"),
    )
    services.auction_schedule(actor=op, auction=putian.pk)
    for org in bidders:
        services.deposit_record(actor=op, auction=putian.pk, bidder=org.pk, amount=DEPOSIT)

    # Zhanjiang mangroves: a 500 t lot by second price (Vickrey), opening in two days.
    lot = parse_tonnes("500")
    zhanjiang = services.auction_create(
        actor=op,
        account=seller_accounts["zhanjiang"].pk,
        batch=batches["zhanjiang"].pk,
        title="Zhanjiang mangrove restoration, 2019-2020 vintage: 500 t lot",
        format="second_price",
        quantity=lot,
        lot_kg=lot,
        reserve=parse_money("150.00", "CNY"),
        opens_at=now + dt.timedelta(days=2),
        closes_at=now + dt.timedelta(days=9),
        **_rules(),
    )
    services.auction_schedule(actor=op, auction=zhanjiang.pk)
