"""``manage.py seed_demo``: a registry with the real blue carbon trades of DOMAIN.md.

Idempotent: everything is created in one transaction, and a second run finds the demo registry
and changes nothing. Demo users (password ``bluecarbon-demo`` unless --password is given):
``admin`` (superuser, operator), ``registrar``, ``auditor``, ``bidder1``..``bidder3``,
``xiangshan``, ``zhanjiang``, ``rongcheng``, ``putian`` (developers), ``trustee`` (the demo
trustee that abstains). Xiangshan's lot is sold by
an English auction among twenty bidder organizations (the three with users and seventeen more),
as it was held; a clock auction of Putian oysters is in its first round; the sealed auctions are
sealed 2-of-3 to three demo trustee organizations whose seeds it keeps in the var directory, DEMO
ONLY (``auctions/demo.py``); and a listing sale (挂牌) is on the board (``listings/demo.py``).

Refused with ``BLUECARBON_ENV=production``: it would create a superuser with a published
password and fictitious registry data on a real ledger, whose entries can never be deleted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from auctions import demo as auction_demo
from ledger import demo as ledger_demo
from ledger import services
from ledger.actors import Actor
from ledger.core.quantity import parse_hectares, parse_share, parse_tonnes
from ledger.management.commands.seed_methodologies import methodologies_seed
from ledger.models import (
    Account,
    Batch,
    Membership,
    Methodology,
    Organization,
    Project,
    Role,
)
from listings.demo import seed_listings

REGISTRY = "demo-registry"


def _point(lon: str, lat: str) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


# The demo as data, in the order it goes on the ledger; ``Command._seed`` walks it.
# Organizations: key, handle, name, Chinese name, role.
ORGANIZATIONS = [
    (
        "operator",
        "bluecarbon-ops",
        "Blue Carbon Exchange (operator)",
        "蓝碳交易所\uff08运营方\uff09",
        Role.OPERATOR,
    ),
    (
        "registry",
        REGISTRY,
        "Marine Carbon Registry (demo)",
        "海洋碳汇登记处\uff08演示\uff09",
        Role.REGISTRY,
    ),
    ("auditor", "coastal-audit", "Coastal Audit Partners", "滨海审计合伙人", Role.AUDITOR),
    (
        "xiangshan",
        "xihu-port-coop",
        "Xiangshan Xihu Port Seaweed Farming Cooperative",
        "象山西沪港海藻养殖合作社",
        Role.DEVELOPER,
    ),
    (
        "zhanjiang",
        "zhanjiang-mangrove",
        "Zhanjiang Mangrove Restoration Co.",
        "湛江红树林修复有限公司",
        Role.DEVELOPER,
    ),
    (
        "rongcheng",
        "rongcheng-seagrass",
        "Rongcheng Seagrass Conservation Co.",
        "荣成海草床保护有限公司",
        Role.DEVELOPER,
    ),
    (
        "putian",
        "putian-oyster",
        "Putian Oyster Farmers Union",
        "莆田牡蛎养殖户联合会",
        Role.DEVELOPER,
    ),
    (
        "ningbo",
        "ningbo-energy",
        "Ningbo Coastal Energy (demo)",
        "宁波滨海能源\uff08演示\uff09",
        Role.BIDDER,
    ),
    (
        "zhejiang",
        "zhejiang-trading",
        "Zhejiang Green Trading (demo)",
        "浙江绿色交易\uff08演示\uff09",
        Role.BIDDER,
    ),
    (
        "shenzhen",
        "shenzhen-finance",
        "Shenzhen Blue Finance (demo)",
        "深圳蓝色金融\uff08演示\uff09",
        Role.BIDDER,
    ),
]
DEVELOPERS = ("xiangshan", "zhanjiang", "rongcheng", "putian")
BIDDERS = ("ningbo", "zhejiang", "shenzhen")

# Each developer's project (the developer's key names it), with its methodology by code.
PROJECTS: dict[str, dict[str, Any]] = {
    "xiangshan": {
        "code": "CN-ZJ-XS-001",
        "name": "Xihu Port seaweed farming carbon sink",
        "name_zh": "象山西沪港海藻养殖碳汇",
        "ecosystem": "macroalgae",
        "storage_pathway": "harvest_export",
        "methodology": "HY/T 0349-2022",
        "jurisdiction": "CN-ZJ",
        "location": _point("121.83", "29.47"),
        "area_m2": parse_hectares("1200"),
        "validation_body": "Zhejiang Marine Monitoring Center",
    },
    "zhanjiang": {
        "code": "CN-GD-ZJ-001",
        "name": "Zhanjiang mangrove restoration (VCS + CCB)",
        "name_zh": "湛江红树林造林项目\uff08VCS + CCB\uff09",
        "ecosystem": "mangrove",
        "storage_pathway": "biomass_sediment",
        "methodology": "VM0033",
        "jurisdiction": "CN-GD",
        "location": _point("110.40", "21.27"),
        "area_m2": parse_hectares("380"),
        "validation_body": "China Environmental United Certification Center",
        "origin_registry": "verra",
        "origin_id": "VCS-2236",
    },
    "rongcheng": {
        "code": "CN-SD-RC-001",
        "name": "Rongcheng seagrass meadow carbon sink",
        "name_zh": "荣成海草床碳汇",
        "ecosystem": "seagrass",
        "storage_pathway": "sediment",
        "methodology": "HY/T 0349-2022",
        "jurisdiction": "CN-SD",
        "location": _point("122.49", "37.16"),
        "area_m2": parse_hectares("125.5"),
        "validation_body": "First Institute of Oceanography, MNR",
    },
    "putian": {
        "code": "CN-FJ-PT-001",
        "name": "Putian oyster farming carbon sink",
        "name_zh": "莆田牡蛎养殖碳汇",
        "ecosystem": "shellfish",
        "storage_pathway": "shell_carbonate",
        "methodology": "HY/T 0349-2022",
        "jurisdiction": "CN-FJ",
        "location": _point("119.10", "25.35"),
        "area_m2": parse_hectares("640"),
        "validation_body": "Xiamen University Coastal Carbon Lab",
    },
}

# Each project's one batch, in issuing order: monitoring period, tonnes, buffer share (%),
# verification body, and the origin registry's transaction where it has one.
BATCHES: dict[str, dict[str, Any]] = {
    "xiangshan": {
        "start": dt.date(2022, 1, 1),
        "end": dt.date(2022, 12, 31),
        "tonnes": "2340.1",
        "share": "0",
        "body": "Zhejiang Marine Monitoring Center",
    },
    "zhanjiang": {
        "start": dt.date(2019, 1, 1),
        "end": dt.date(2020, 12, 31),
        "tonnes": "5880",
        "share": "20",
        "body": "China Environmental United Certification Center",
        "origin_registry": "verra",
        "origin_tx_id": "VCS-2236-2019-2020",
    },
    "rongcheng": {
        "start": dt.date(2023, 1, 1),
        "end": dt.date(2023, 12, 31),
        "tonnes": "338.7",
        "share": "10",
        "body": "First Institute of Oceanography, MNR",
    },
    "putian": {
        "start": dt.date(2021, 1, 1),
        "end": dt.date(2021, 12, 31),
        "tonnes": "10840",
        "share": "10",
        "body": "Xiamen University Coastal Carbon Lab",
    },
}

# After the auctions: who moves, retires and cancels what (batch by project key, accounts by
# organization key). The Xiangshan winner's retirement comes first (``_after_the_auctions``).
AFTER: list[tuple[str, dict[str, Any]]] = [
    (
        "transfer",
        {"batch": "zhanjiang", "sender": "zhanjiang", "recipient": "shenzhen", "tonnes": "1200"},
    ),
    (
        "retire",
        {
            "batch": "zhanjiang",
            "account": "shenzhen",
            "tonnes": "220.5",
            "beneficiary": "Shenzhen Blue Finance",
            "purpose": "Carbon-neutral 2023 annual conference",
            "jurisdiction": "CN-GD",
        },
    ),
    (
        "transfer",
        {"batch": "putian", "sender": "putian", "recipient": "zhejiang", "tonnes": "3000"},
    ),
    (
        "transfer",
        {"batch": "rongcheng", "sender": "rongcheng", "recipient": "zhejiang", "tonnes": "100"},
    ),
    (
        "cancel",
        {
            "batch": "putian",
            "account": "zhejiang",
            "tonnes": "40",
            "reason": "Exported to another registry",
            "destination": "Fujian Marine Carbon Exchange",
        },
    ),
]


class Command(BaseCommand):
    help = "Load realistic demo data (idempotent)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--password", default="bluecarbon-demo")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError(
                "seed_demo refuses to run with BLUECARBON_ENV=production: it creates the "
                "superuser admin with a known password and demo data on an append-only ledger"
            )
        if Organization.objects.filter(handle=REGISTRY).exists():
            self.stdout.write("demo data already present: nothing to do")
            return
        with transaction.atomic(durable=True):
            self._seed(options["password"])
            # And a listing sale (挂牌) on the board, last: listings/demo.py.
            seed_listings(op=Actor.system("seed_demo"))
            # Each project's monitoring and verification reports, attached by its registry.
            for project in Project.objects.filter(registry__handle=REGISTRY).order_by("pk"):
                ledger_demo.seed_documents(actor=Actor.system("seed_demo"), project=project)
        checkpoint = services.ledger_checkpoint_issue()
        self.stdout.write(
            self.style.SUCCESS(
                f"demo data loaded; checkpoint at size {checkpoint.size if checkpoint else '-'}"
            )
        )
        # The demo operator signs in with a second factor too, as every operator must; the
        # portal's command enrols it and says how (on a terminal only).
        call_command("demo_two_factor", stdout=self.stdout)

    def _user(self, username: str, org: Organization, password: str, **extra: Any) -> None:
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(username=username, password=password, **extra)
        Membership.objects.get_or_create(user=user, defaults={"organization": org})

    def _seed(self, password: str) -> None:
        op = Actor.system("seed_demo")
        orgs = {
            key: services.organization_register(
                actor=op, handle=handle, name=name, name_zh=name_zh, roles=[role]
            )
            for key, handle, name, name_zh, role in ORGANIZATIONS
        }
        acct = {
            key: services.account_open(actor=op, organization=orgs[key].pk, name="Main holding")
            for key in (*DEVELOPERS, *BIDDERS)
        }
        methodologies_seed(actor=op)
        meth = {m.code: m.pk for m in Methodology.objects.all()}
        projects = {
            dev: services.project_register(
                actor=op,
                registry=orgs["registry"].pk,
                developer=orgs[dev].pk,
                status="active",
                **(fields | {"methodology": meth[fields["methodology"]]}),
            )
            for dev, fields in PROJECTS.items()
        }
        batches = {
            dev: self._issue(op, projects[dev], acct[dev], **BATCHES[dev]) for dev in BATCHES
        }
        # Xiangshan, February 2023: the whole 2,340.1 t lot auctioned live (start 30 CNY/t, a
        # 30,000 CNY deposit, many rising rounds among twenty bidders) and sold at 106 CNY/t to
        # a precision-machinery company. Here: the same English auction (with a short demo
        # countdown; auctions/demo.py), run to delivery.
        xs_auction = auction_demo.seed_auctions(
            op=op,
            bidders=[orgs[key] for key in BIDDERS],
            seller_accounts={
                dev: acct[dev] for dev in ("xiangshan", "zhanjiang", "putian", "rongcheng")
            },
            batches=batches,
        )
        self._after_the_auctions(op, xs_auction, batches, acct)
        self._users(orgs, password)
        assert Account.objects.filter(organization=orgs["registry"], kind="buffer").exists()

    def _issue(
        self,
        op: Actor,
        p: Project,
        holder: Account,
        *,
        start: dt.date,
        end: dt.date,
        tonnes: str,
        share: str,
        body: str,
        **extra: Any,
    ) -> Batch:
        return services.batch_issue(
            actor=op,
            project=p.pk,
            monitoring_start=start,
            monitoring_end=end,
            verification_body=body,
            # The report attached to the project after the seed (ledger/demo.py), by its hash.
            verification_report_sha256=hashlib.sha256(
                ledger_demo.verification_report(p.code, start, end, body)
            ).hexdigest(),
            quantity=parse_tonnes(tonnes),
            buffer_share_bp=parse_share(share),
            holder=holder.pk,
            **extra,
        )

    def _after_the_auctions(
        self, op: Actor, xs_auction: Any, batches: dict[str, Batch], acct: dict[str, Account]
    ) -> None:
        # The Xiangshan winner bought for future offsets: it retires part of the lot later in
        # the year.
        (award,) = xs_auction.awards.all()
        services.credit_retire(
            actor=op,
            batch=batches["xiangshan"].pk,
            account=award.account_id,
            quantity=parse_tonnes("1000"),
            beneficiary="Ningbo Precision Machinery Co.",
            purpose="Offsetting 2023 Scope 1 emissions",
            jurisdiction="CN-ZJ",
            reason="Voluntary retirement of part of the lot bought at the Xiangshan auction",
        )
        for action, step in AFTER:
            fields = dict(step)
            batch = batches[fields.pop("batch")].pk
            quantity = parse_tonnes(fields.pop("tonnes"))
            if action == "transfer":
                services.credit_transfer(
                    actor=op,
                    batch=batch,
                    sender=acct[fields["sender"]].pk,
                    recipient=acct[fields["recipient"]].pk,
                    quantity=quantity,
                )
            else:
                do = services.credit_retire if action == "retire" else services.credit_cancel
                account = acct[fields.pop("account")].pk
                do(actor=op, batch=batch, account=account, quantity=quantity, **fields)

    def _users(self, orgs: dict[str, Organization], password: str) -> None:
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", password)
        Membership.objects.get_or_create(
            user=User.objects.get(username="admin"), defaults={"organization": orgs["operator"]}
        )
        self._user("registrar", orgs["registry"], password)
        self._user("auditor", orgs["auditor"], password)
        for i, key in enumerate(BIDDERS, 1):
            self._user(f"bidder{i}", orgs[key], password, email=f"bidder{i}@bidders.example")
        for key in DEVELOPERS:
            self._user(key, orgs[key], password)
        # The demo trustee that abstains from the demo task's releases: its member releases in
        # the portal (/account/trustee/), as a real trustee may.
        abstaining = auction_demo.DEMO_TRUSTEES[auction_demo.DEMO_THRESHOLD][0]
        self._user("trustee", Organization.objects.get(handle=abstaining), password)
