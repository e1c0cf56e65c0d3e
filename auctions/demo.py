"""Demo auctions for ``seed_demo``: the Xiangshan seaweed lot sold by sealed bid and settled,
an open uniform-price auction of Putian oyster credits, and a scheduled Vickrey auction of
Zhanjiang mangrove credits. Everything goes through the services (and so the ledger).

Every demo auction is sealed 2-of-3 to three demo trustee organizations (docs/auctions.md
§3.6). A real trustee makes its keys on its own machine and releases one after the close
(``bluecarbon-audit trustee``); in the demo their seeds sit in the demo's var directory
(``demo-trustee-seeds/<handle>.DEMO-ONLY-trustee-seed``, never in the repository) and a task
labelled DEMO ONLY (``auctions.tasks.demo_trustees_release_task``) releases the keys of two of
them once a demo auction has closed; the third abstains, as a trustee may. Where no demo seed
exists (production, where ``seed_demo`` refuses to run) it does nothing. Whoever holds these
seeds can open the demo's bids before the close: that is why they are the demo's only.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Any

from bluecarbon_audit.auctions import trustee_keys
from django.conf import settings
from django.utils import timezone

from ledger import services as registry
from ledger.actors import Actor
from ledger.core.quantity import parse_money, parse_tonnes
from ledger.exceptions import DomainError
from ledger.models import Organization, Role

from . import services, trustees
from .core import sealing
from .models import Auction, TrusteeKey

log = logging.getLogger(__name__)

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


# ---- DEMO ONLY: the demo's trustees --------------------------------------------------------

# (handle, name): an exchange, a registry and an auditor, in their order in the demo's rules.
DEMO_TRUSTEES = (
    ("ningbo-exchange-trustee", "Ningbo Public Resource Trading Center (demo trustee)"),
    ("xiamen-registry-trustee", "Xiamen Marine Carbon Sink Registry (demo trustee)"),
    ("coastal-audit-trustee", "Coastal Audit Partners, key custody (demo trustee)"),
)
DEMO_THRESHOLD = 2
# The two the demo task releases for; the auditor abstains, so every demo auction shows 2-of-3.
DEMO_RELEASING = tuple(handle for handle, _ in DEMO_TRUSTEES[:DEMO_THRESHOLD])
SEED_SUFFIX = ".DEMO-ONLY-trustee-seed"
# Unused keys each demo trustee keeps registered (an auction takes one of each trustee's).
KEYS_LOW, KEYS_BATCH = 10, 20


def seed_dir() -> Path:
    return Path(settings.VAR_DIR) / "demo-trustee-seeds"


def seed_path(handle: str) -> Path:
    return seed_dir() / f"{handle}{SEED_SUFFIX}"


def _read_seed(handle: str) -> bytes | None:
    try:
        text = seed_path(handle).read_text()
    except FileNotFoundError:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
    return bytes.fromhex(lines[-1]) if lines else None


def _seed(handle: str) -> bytes:
    """The demo trustee's seed, made (and kept, readable by this user only) on first use."""
    seed = _read_seed(handle)
    if seed is not None:
        return seed
    seed = trustee_keys.new_seed()
    seed_dir().mkdir(parents=True, exist_ok=True)
    fd = os.open(seed_path(handle), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(
            f"# DEMO ONLY: the trustee seed of {handle}, a demo trustee of bin/demo. Its keys\n"
            "# open the demo auctions' bids; a real trustee keeps its seed on its own machine.\n"
            f"{seed.hex()}\n"
        )
    return seed


def _actor(org: Organization) -> Actor:
    return Actor(f"org:{org.handle}", org.pk)


def _keys_register(org: Organization, seed: bytes, count: int) -> None:
    """``count`` more keys: key i is the seed's key i, i the trustee's count of keys so far."""
    first = TrusteeKey.objects.filter(organization=org).count()
    trustees.trustee_keys_register(
        actor=_actor(org),
        public_keys=[trustee_keys.public_key(seed, i) for i in range(first, first + count)],
    )


def seed_trustees(*, op: Actor) -> list[Organization]:
    """DEMO ONLY: the three demo trustee organizations, their seeds and some keys each."""
    orgs = []
    for handle, name in DEMO_TRUSTEES:
        org = registry.organization_register(
            actor=op, handle=handle, name=name, roles=[Role.TRUSTEE]
        )
        _keys_register(org, _seed(handle), KEYS_BATCH)
        orgs.append(org)
    return orgs


def _demo_seeds() -> dict[str, bytes]:
    found = {}
    for handle, _ in DEMO_TRUSTEES:
        seed = _read_seed(handle)
        if seed is not None:
            found[handle] = seed
    return found


def _private_key(seed: bytes, key: TrusteeKey) -> bytes | None:
    """The private half of ``key`` from the seed: key i is the trustee's i-th key registered."""
    public = bytes(key.public_key)
    index = TrusteeKey.objects.filter(organization_id=key.organization_id, pk__lt=key.pk).count()
    if trustee_keys.public_key(seed, index) != public:
        found = trustee_keys.find(seed, public, limit=index + KEYS_BATCH)
        if found is None:
            return None
        index = found
    return trustee_keys.private_key(seed, index)


def demo_trustees_release(*, auction: int | None = None) -> int:
    """DEMO ONLY: release the keys of the two releasing demo trustees for every closed auction
    sealed to them (or for ``auction`` only), and keep each demo trustee with unused keys.
    Nothing without the demo seeds. Returns the number of keys released."""
    seeds = _demo_seeds()
    if settings.PRODUCTION or not seeds:
        return 0
    waiting = (
        TrusteeKey.objects.filter(
            organization__handle__in=[h for h in DEMO_RELEASING if h in seeds],
            private_key__isnull=True,
            auction__state=Auction.State.CLOSING,
        )
        .select_related("organization")
        .order_by("auction_id", "position")
    )
    if auction is not None:
        waiting = waiting.filter(auction_id=auction)
    released = 0
    for key in waiting:
        org, auction_id = key.organization, key.auction_id
        assert auction_id is not None  # the filter is on its auction's state
        private = _private_key(seeds[org.handle], key)
        if private is None:
            log.warning(
                "DEMO ONLY: demo trustee %s: key %s of auction %s is not one its demo seed made; "
                "not released",
                org.handle,
                key.pk,
                auction_id,
            )
            continue
        try:
            trustees.trustee_release(actor=_actor(org), auction=auction_id, private_key=private)
        except DomainError as exc:  # the auction moved on meanwhile (failed, cancelled)
            log.warning(
                "DEMO ONLY: demo trustee %s could not release for auction %s: %s",
                org.handle,
                auction_id,
                exc,
            )
            continue
        released += 1
        log.info(
            "DEMO ONLY: demo trustee %s released its key for auction %s (position %s)",
            org.handle,
            auction_id,
            key.position,
        )
    for org in Organization.objects.filter(handle__in=seeds).order_by("pk"):
        unused = TrusteeKey.objects.filter(organization=org, auction__isnull=True).count()
        if unused < KEYS_LOW:
            _keys_register(org, seeds[org.handle], KEYS_BATCH)
            log.info("DEMO ONLY: demo trustee %s registered %s more keys", org.handle, KEYS_BATCH)
    return released


def _sealed_to(board: list[Organization], closes_at: dt.datetime) -> dict[str, Any]:
    return {
        "sealing_mode": "trustees",
        "trustee_ids": [o.pk for o in board],
        "threshold": DEMO_THRESHOLD,
        "release_by": closes_at + dt.timedelta(days=1),
    }


def _seal(a: Auction, bidder: Organization, tiers: list[dict[str, int]]) -> bytes:
    return sealing.seal_threshold(
        trustee_keys=[bytes(k.public_key) for k in trustees.auction_keys(a)],
        threshold=a.threshold or 0,
        origin=settings.LEDGER_ORIGIN,
        auction=a.pk,
        bidder=bidder.pk,
        tiers=tiers,
    )


def seed_auctions(
    *, op: Actor, bidders: list[Any], seller_accounts: dict[str, Any], batches: dict[str, Any]
) -> None:
    for org in bidders:
        services.bidder_approve(actor=op, organization=org.pk)
    board = seed_trustees(op=op)
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
        **_sealed_to(board, now + dt.timedelta(seconds=1)),
    )
    services.auction_schedule(actor=op, auction=xs.pk)
    xs.refresh_from_db()
    prices = {"ningbo-energy": "106.00", "zhejiang-trading": "98.00", "shenzhen-finance": "101.00"}
    for org in bidders:
        services.deposit_record(actor=op, auction=xs.pk, bidder=org.pk, amount=DEPOSIT)
        ciphertext = _seal(xs, org, [{"price": parse_money(prices[org.handle], "CNY"), "lots": 1}])
        services.bid_submit(
            actor=Actor(f"org:{org.handle}", org.pk), auction=xs.pk, ciphertext=ciphertext
        )
    # The worker's steps, here in line: wait for the deadline, close, the demo trustees'
    # release (what the DEMO ONLY task does for the others), open, clear, settle.
    time.sleep(max(0.0, (xs.closes_at - timezone.now()).total_seconds()) + 0.05)
    services.auction_close(auction=xs.pk)
    demo_trustees_release(auction=xs.pk)
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
        **_sealed_to(board, now + dt.timedelta(days=7)),
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
        **_sealed_to(board, now + dt.timedelta(days=9)),
    )
    services.auction_schedule(actor=op, auction=zhanjiang.pk)
