"""Demo auctions for ``seed_demo``: the Xiangshan seaweed lot sold as it was held, by a live
English auction among twenty bidders, and settled; 100 t of Rongcheng seagrass sold by sealed
bid and settled; an open uniform-price auction of Putian oyster credits and an ascending clock
auction of more of them in its first round; and a scheduled Vickrey auction of Zhanjiang
mangrove credits. Everything goes through the services (and so the ledger).

Xiangshan (DOMAIN.md; Ningbo, 28 February 2023): 2,340.1 t in one lot, a 30,000 CNY deposit,
start 30.00 CNY/t, raises of at least 1.00 CNY/t, many rounds of rising bids by twenty-odd
companies, the hammer at 106.00 CNY/t (248,050.60 CNY) to a precision-machinery company buying
for future offsets. The re-enactment keeps the rules but not the clock: its free phase lasts
2 s and its countdown 2 s, so that ``seed_demo`` stays quick, where the event was bid live
with a longer countdown (a real auction here would fix one of a minute or more in its rules).
Its bids (``XIANGSHAN_FREE_BIDS`` and ``XIANGSHAN_TIMED_BIDS``: a plausible sequence, not the
event's record, which was not published bid by bid) go through ``english.english_bid``, the
service the API calls; each of the timed phase's restarts the countdown. Then the worker's steps,
in line: close at the end, clear, settle, the winner's payment.

The sealed demo auctions are sealed 2-of-3 to three demo trustee organizations
(docs/auctions.md §3.6); the English one takes open bids and has no keys. A real trustee makes
its keys on its own machine and releases one after the close (``bluecarbon-audit trustee``); in
the demo their seeds sit in the demo's var directory
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

from . import clock, english, services, trustees
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


# ---- Xiangshan, as held: an English auction among twenty bidders ---------------------------

# The seventeen bidders the Xiangshan auction adds to the demo's three (fictional companies,
# hence "(demo)"); the first is the winner, a precision-machinery maker buying for future
# offsets, as at the event.
XIANGSHAN_WINNER = "ningbo-precision-machinery"
XIANGSHAN_BIDDERS = (
    (XIANGSHAN_WINNER, "Ningbo Precision Machinery Co. (demo)"),
    ("xiangshan-aquatic", "Xiangshan Aquatic Foods Co. (demo)"),
    ("ningbo-port-logistics", "Ningbo Port Logistics Co. (demo)"),
    ("cixi-appliances", "Cixi Home Appliances Co. (demo)"),
    ("beilun-steel", "Beilun Steel Works Co. (demo)"),
    ("fenghua-textiles", "Fenghua Textiles Co. (demo)"),
    ("ninghai-auto-parts", "Ninghai Auto Parts Co. (demo)"),
    ("taizhou-pharma", "Taizhou Pharmaceutical Co. (demo)"),
    ("yuyao-optoelectronics", "Yuyao Optoelectronics Co. (demo)"),
    ("wenzhou-electrical", "Wenzhou Electrical Equipment Co. (demo)"),
    ("shaoxing-dyeing", "Shaoxing Dyeing and Printing Co. (demo)"),
    ("zhejiang-paper", "Zhejiang Coastal Paper Co. (demo)"),
    ("jiaxing-materials", "Jiaxing New Materials Co. (demo)"),
    ("zhoushan-shipbuilding", "Zhoushan Shipbuilding Co. (demo)"),
    ("hangzhou-bay-petrochem", "Hangzhou Bay Petrochemical Co. (demo)"),
    ("ningbo-green-leasing", "Ningbo Green Financial Leasing Co. (demo)"),
    ("shanghai-carbon-asset", "Shanghai Carbon Asset Management Co. (demo)"),
)
XIANGSHAN_START, XIANGSHAN_STEP, XIANGSHAN_HAMMER = "30.00", "1.00", "106.00"
# The demo's clock (the module's docstring): a short free phase, a short countdown.
XIANGSHAN_FREE_S, XIANGSHAN_COUNTDOWN_S = 2.0, 2
# (bidder, CNY/t): the free phase's bids, in which twenty companies come in...
XIANGSHAN_FREE_BIDS = (
    ("xiangshan-aquatic", "30.00"),
    ("ningbo-port-logistics", "31.00"),
    ("cixi-appliances", "33.00"),
    ("beilun-steel", "35.00"),
    ("fenghua-textiles", "36.00"),
    ("ningbo-energy", "38.00"),
    ("ninghai-auto-parts", "40.00"),
    ("zhejiang-trading", "42.00"),
    ("taizhou-pharma", "45.00"),
    ("yuyao-optoelectronics", "46.00"),
    ("wenzhou-electrical", "48.00"),
    ("shenzhen-finance", "50.00"),
    ("shaoxing-dyeing", "52.00"),
    ("zhejiang-paper", "53.00"),
    ("jiaxing-materials", "55.00"),
    ("zhoushan-shipbuilding", "56.00"),
    ("hangzhou-bay-petrochem", "58.00"),
    ("ningbo-green-leasing", "60.00"),
    ("shanghai-carbon-asset", "61.00"),
    (XIANGSHAN_WINNER, "63.00"),
    ("xiangshan-aquatic", "65.00"),
    ("beilun-steel", "66.00"),
    ("ningbo-energy", "68.00"),
    ("zhoushan-shipbuilding", "70.00"),
)
# ...and the timed phase's, each restarting the countdown, as the field thins to two.
XIANGSHAN_TIMED_BIDS = (
    ("hangzhou-bay-petrochem", "71.00"),
    (XIANGSHAN_WINNER, "72.00"),
    ("shanghai-carbon-asset", "74.00"),
    ("ningbo-energy", "75.00"),
    ("zhoushan-shipbuilding", "76.00"),
    (XIANGSHAN_WINNER, "78.00"),
    ("hangzhou-bay-petrochem", "79.00"),
    ("shanghai-carbon-asset", "80.00"),
    ("zhejiang-trading", "82.00"),
    (XIANGSHAN_WINNER, "83.00"),
    ("zhoushan-shipbuilding", "85.00"),
    ("shanghai-carbon-asset", "86.00"),
    (XIANGSHAN_WINNER, "88.00"),
    ("hangzhou-bay-petrochem", "89.00"),
    ("shanghai-carbon-asset", "90.00"),
    (XIANGSHAN_WINNER, "92.00"),
    ("zhoushan-shipbuilding", "93.00"),
    ("shanghai-carbon-asset", "95.00"),
    (XIANGSHAN_WINNER, "96.00"),
    ("hangzhou-bay-petrochem", "97.00"),
    ("shanghai-carbon-asset", "98.00"),
    (XIANGSHAN_WINNER, "99.00"),
    ("shanghai-carbon-asset", "100.00"),
    (XIANGSHAN_WINNER, "101.00"),
    ("shanghai-carbon-asset", "102.00"),
    (XIANGSHAN_WINNER, "103.00"),
    ("shanghai-carbon-asset", "104.00"),
    (XIANGSHAN_WINNER, XIANGSHAN_HAMMER),
)


def _wait_until(moment: dt.datetime) -> None:
    time.sleep(max(0.0, (moment - timezone.now()).total_seconds()) + 0.05)


def seed_xiangshan(
    *, op: Actor, bidders: list[Organization], seller_account: Any, batch: Any
) -> Auction:
    """The Xiangshan lot by English auction, bid through ``english.english_bid`` by the demo's
    bidders and the seventeen it adds (approved, each with a holding account and the 30,000 CNY
    deposit), then closed at its end, cleared, settled and paid. Returns the auction."""
    everyone = {org.handle: org for org in bidders}
    for handle, name in XIANGSHAN_BIDDERS:
        org = registry.organization_register(
            actor=op, handle=handle, name=name, roles=[Role.BIDDER]
        )
        registry.account_open(actor=op, organization=org.pk, name="Main holding")
        services.bidder_approve(actor=op, organization=org.pk)
        everyone[handle] = org
    lot = parse_tonnes("2340.1")
    now = timezone.now()
    xs = services.auction_create(
        actor=op,
        account=seller_account.pk,
        batch=batch.pk,
        title="Xihu Port seaweed farming sink, 2022 (Xiangshan, Ningbo)",
        format="english",
        quantity=lot,
        lot_kg=lot,
        reserve=parse_money(XIANGSHAN_START, "CNY"),
        opens_at=now,
        closes_at=now + dt.timedelta(seconds=XIANGSHAN_FREE_S),
        increments=[[0, parse_money(XIANGSHAN_STEP, "CNY")]],
        countdown_s=XIANGSHAN_COUNTDOWN_S,
        **_rules(undersubscribed="cancel"),
    )
    for org in everyone.values():
        services.deposit_record(actor=op, auction=xs.pk, bidder=org.pk, amount=DEPOSIT)
    services.auction_schedule(actor=op, auction=xs.pk)

    def bid(handle: str, price: str) -> None:
        org = everyone[handle]
        english.english_bid(actor=_actor(org), auction=xs.pk, price=parse_money(price, "CNY"))

    for handle, price in XIANGSHAN_FREE_BIDS:
        bid(handle, price)
    xs.refresh_from_db()
    _wait_until(xs.closes_at)
    for handle, price in XIANGSHAN_TIMED_BIDS:
        bid(handle, price)
    # The worker's steps, here in line: at the end of the countdown, close (which names the
    # paddles' bidders), clear, settle; then the winner's payment.
    xs.refresh_from_db()
    _wait_until(xs.bidding_ends_at)
    if not services.auction_close(auction=xs.pk):
        raise RuntimeError(f"the Xiangshan demo auction {xs.pk} did not close at its end")
    services.auction_clear(auction=xs.pk)
    services.auction_settle(auction=xs.pk)
    for award in xs.awards.all():
        services.award_confirm_payment(actor=op, award=award.pk)
    xs.refresh_from_db()
    return xs


def seed_auctions(
    *, op: Actor, bidders: list[Any], seller_accounts: dict[str, Any], batches: dict[str, Any]
) -> Auction:
    """The demo's auctions; returns Xiangshan's (settled)."""
    for org in bidders:
        services.bidder_approve(actor=op, organization=org.pk)
    board = seed_trustees(op=op)
    now = timezone.now()

    # Rongcheng seagrass: 100 t in lots of 10 t by sealed bid, uniform price, settled: the
    # sealed formats' whole way (the trustees' release, the opening, the demand curve) on a
    # finished auction. It closes while the Xiangshan auction runs.
    rc_closes = now + dt.timedelta(seconds=1)
    rongcheng = services.auction_create(
        actor=op,
        account=seller_accounts["rongcheng"].pk,
        batch=batches["rongcheng"].pk,
        title="Rongcheng seagrass meadow sink, 2023: 100 t in lots of 10 t",
        format="uniform",
        quantity=parse_tonnes("100"),
        lot_kg=parse_tonnes("10"),
        reserve=parse_money("60.00", "CNY"),
        opens_at=now,
        closes_at=rc_closes,
        **_rules(),
        **_sealed_to(board, rc_closes),
    )
    services.auction_schedule(actor=op, auction=rongcheng.pk)
    rongcheng.refresh_from_db()
    demand = {"ningbo-energy": ("88.00", 6), "zhejiang-trading": ("85.00", 5)}
    demand["shenzhen-finance"] = ("80.00", 3)
    for org in bidders:
        services.deposit_record(actor=op, auction=rongcheng.pk, bidder=org.pk, amount=DEPOSIT)
        price, lots = demand[org.handle]
        tiers = [{"price": parse_money(price, "CNY"), "lots": lots}]
        services.bid_submit(
            actor=_actor(org), auction=rongcheng.pk, ciphertext=_seal(rongcheng, org, tiers)
        )

    xs = seed_xiangshan(
        op=op,
        bidders=bidders,
        seller_account=seller_accounts["xiangshan"],
        batch=batches["xiangshan"],
    )
    # Rongcheng's close, in line as the worker's steps: close, the demo trustees' release
    # (what the DEMO ONLY task does for the others), open, clear, settle, the payments.
    _wait_until(rongcheng.closes_at)
    services.auction_close(auction=rongcheng.pk)
    demo_trustees_release(auction=rongcheng.pk)
    services.auction_bids_open(auction=rongcheng.pk, first=0, last=2**62)
    services.auction_clear(auction=rongcheng.pk)
    services.auction_settle(auction=rongcheng.pk)
    for award in rongcheng.awards.all():
        services.award_confirm_payment(actor=op, award=award.pk)
    now = timezone.now()

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

    # More Putian oysters: 1,000 t in lots of 10 t by ascending clock (docs/auctions-ascending.md
    # §6), round 1 at 50.00 CNY/t for a day, then hourly rounds 2.00 CNY/t higher while demand
    # exceeds the 100 lots. Three bidders have bid in round 1 (135 lots): round 2 will follow.
    clock_auction = services.auction_create(
        actor=op,
        account=seller_accounts["putian"].pk,
        batch=batches["putian"].pk,
        title="Putian oyster farming sink, 2021: 1,000 t by ascending clock",
        format="clock",
        quantity=parse_tonnes("1000"),
        lot_kg=parse_tonnes("10"),
        reserve=parse_money("50.00", "CNY"),
        opens_at=now,
        closes_at=now + dt.timedelta(days=1),
        increments=[[0, parse_money("2.00", "CNY")]],
        round_s=3600,
        **_rules(tie_rule="pro_rata"),
    )
    services.auction_schedule(actor=op, auction=clock_auction.pk)
    for org, lots in zip(bidders, (60, 45, 30), strict=False):
        services.deposit_record(actor=op, auction=clock_auction.pk, bidder=org.pk, amount=DEPOSIT)
        clock.clock_bid(actor=_actor(org), auction=clock_auction.pk, lots=lots)

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
    return xs
