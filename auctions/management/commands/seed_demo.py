"""``manage.py seed_demo``: a registry with the real blue carbon trades of DOMAIN.md.

Idempotent: everything is created in one transaction, and a second run finds the demo registry
and changes nothing. Demo users (password ``bluecarbon-demo`` unless --password is given):
``admin`` (superuser, operator), ``registrar``, ``auditor``, ``bidder1``..``bidder3``,
``xiangshan``, ``zhanjiang``, ``rongcheng``, ``putian`` (developers). Xiangshan's lot is sold by
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
from ledger.models import Account, Membership, Methodology, Organization, Project, Role
from listings.demo import seed_listings

REGISTRY = "demo-registry"


def _point(lon: str, lat: str) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


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
        org = services.organization_register
        operator = org(
            actor=op,
            handle="bluecarbon-ops",
            name="Blue Carbon Exchange (operator)",
            name_zh="蓝碳交易所\uff08运营方\uff09",
            roles=[Role.OPERATOR],
        )
        registry = org(
            actor=op,
            handle=REGISTRY,
            name="Marine Carbon Registry (demo)",
            name_zh="海洋碳汇登记处\uff08演示\uff09",
            roles=[Role.REGISTRY],
        )
        auditor = org(
            actor=op,
            handle="coastal-audit",
            name="Coastal Audit Partners",
            name_zh="滨海审计合伙人",
            roles=[Role.AUDITOR],
        )
        devs = {
            "xiangshan": org(
                actor=op,
                handle="xihu-port-coop",
                name="Xiangshan Xihu Port Seaweed Farming Cooperative",
                name_zh="象山西沪港海藻养殖合作社",
                roles=[Role.DEVELOPER],
            ),
            "zhanjiang": org(
                actor=op,
                handle="zhanjiang-mangrove",
                name="Zhanjiang Mangrove Restoration Co.",
                name_zh="湛江红树林修复有限公司",
                roles=[Role.DEVELOPER],
            ),
            "rongcheng": org(
                actor=op,
                handle="rongcheng-seagrass",
                name="Rongcheng Seagrass Conservation Co.",
                name_zh="荣成海草床保护有限公司",
                roles=[Role.DEVELOPER],
            ),
            "putian": org(
                actor=op,
                handle="putian-oyster",
                name="Putian Oyster Farmers Union",
                name_zh="莆田牡蛎养殖户联合会",
                roles=[Role.DEVELOPER],
            ),
        }
        bidders = [
            org(
                actor=op,
                handle="ningbo-energy",
                name="Ningbo Coastal Energy (demo)",
                name_zh="宁波滨海能源\uff08演示\uff09",
                roles=[Role.BIDDER],
            ),
            org(
                actor=op,
                handle="zhejiang-trading",
                name="Zhejiang Green Trading (demo)",
                name_zh="浙江绿色交易\uff08演示\uff09",
                roles=[Role.BIDDER],
            ),
            org(
                actor=op,
                handle="shenzhen-finance",
                name="Shenzhen Blue Finance (demo)",
                name_zh="深圳蓝色金融\uff08演示\uff09",
                roles=[Role.BIDDER],
            ),
        ]
        acct = {
            o.handle: services.account_open(actor=op, organization=o.pk, name="Main holding")
            for o in [*devs.values(), *bidders]
        }

        methodologies_seed(actor=op)
        meth = {m.code: m for m in Methodology.objects.all()}

        def project(dev: str, **fields: Any) -> Any:
            return services.project_register(
                actor=op, registry=registry.pk, developer=devs[dev].pk, status="active", **fields
            )

        xiangshan = project(
            "xiangshan",
            code="CN-ZJ-XS-001",
            name="Xihu Port seaweed farming carbon sink",
            name_zh="象山西沪港海藻养殖碳汇",
            ecosystem="macroalgae",
            storage_pathway="harvest_export",
            methodology=meth["HY/T 0349-2022"].pk,
            jurisdiction="CN-ZJ",
            location=_point("121.83", "29.47"),
            area_m2=parse_hectares("1200"),
            validation_body="Zhejiang Marine Monitoring Center",
        )
        zhanjiang = project(
            "zhanjiang",
            code="CN-GD-ZJ-001",
            name="Zhanjiang mangrove restoration (VCS + CCB)",
            name_zh="湛江红树林造林项目\uff08VCS + CCB\uff09",
            ecosystem="mangrove",
            storage_pathway="biomass_sediment",
            methodology=meth["VM0033"].pk,
            jurisdiction="CN-GD",
            location=_point("110.40", "21.27"),
            area_m2=parse_hectares("380"),
            validation_body="China Environmental United Certification Center",
            origin_registry="verra",
            origin_id="VCS-2236",
        )
        rongcheng = project(
            "rongcheng",
            code="CN-SD-RC-001",
            name="Rongcheng seagrass meadow carbon sink",
            name_zh="荣成海草床碳汇",
            ecosystem="seagrass",
            storage_pathway="sediment",
            methodology=meth["HY/T 0349-2022"].pk,
            jurisdiction="CN-SD",
            location=_point("122.49", "37.16"),
            area_m2=parse_hectares("125.5"),
            validation_body="First Institute of Oceanography, MNR",
        )
        putian = project(
            "putian",
            code="CN-FJ-PT-001",
            name="Putian oyster farming carbon sink",
            name_zh="莆田牡蛎养殖碳汇",
            ecosystem="shellfish",
            storage_pathway="shell_carbonate",
            methodology=meth["HY/T 0349-2022"].pk,
            jurisdiction="CN-FJ",
            location=_point("119.10", "25.35"),
            area_m2=parse_hectares("640"),
            validation_body="Xiamen University Coastal Carbon Lab",
        )

        def issue(
            p: Any,
            dev: str,
            start: dt.date,
            end: dt.date,
            tonnes: str,
            share: str,
            body: str,
            **extra: Any,
        ) -> Any:
            return services.batch_issue(
                actor=op,
                project=p.pk,
                monitoring_start=start,
                monitoring_end=end,
                verification_body=body,
                # The report attached to the project below (ledger/demo.py), by its hash.
                verification_report_sha256=hashlib.sha256(
                    ledger_demo.verification_report(p.code, start, end, body)
                ).hexdigest(),
                quantity=parse_tonnes(tonnes),
                buffer_share_bp=parse_share(share),
                holder=acct[devs[dev].handle].pk,
                **extra,
            )

        xs = issue(
            xiangshan,
            "xiangshan",
            dt.date(2022, 1, 1),
            dt.date(2022, 12, 31),
            "2340.1",
            "0",
            "Zhejiang Marine Monitoring Center",
        )
        zj = issue(
            zhanjiang,
            "zhanjiang",
            dt.date(2019, 1, 1),
            dt.date(2020, 12, 31),
            "5880",
            "20",
            "China Environmental United Certification Center",
            origin_registry="verra",
            origin_tx_id="VCS-2236-2019-2020",
        )
        rc = issue(
            rongcheng,
            "rongcheng",
            dt.date(2023, 1, 1),
            dt.date(2023, 12, 31),
            "338.7",
            "10",
            "First Institute of Oceanography, MNR",
        )
        pt = issue(
            putian,
            "putian",
            dt.date(2021, 1, 1),
            dt.date(2021, 12, 31),
            "10840",
            "10",
            "Xiamen University Coastal Carbon Lab",
        )

        # Xiangshan, February 2023: the whole 2,340.1 t lot auctioned live (start 30 CNY/t, a
        # 30,000 CNY deposit, many rising rounds among twenty bidders) and sold at 106 CNY/t to
        # a precision-machinery company. Here: the same English auction (with a short demo
        # countdown; auctions/demo.py), run to delivery.
        xs_auction = auction_demo.seed_auctions(
            op=op,
            bidders=bidders,
            seller_accounts={
                "xiangshan": acct["xihu-port-coop"],
                "zhanjiang": acct["zhanjiang-mangrove"],
                "putian": acct["putian-oyster"],
                "rongcheng": acct["rongcheng-seagrass"],
            },
            batches={"xiangshan": xs, "zhanjiang": zj, "putian": pt, "rongcheng": rc},
        )
        # The winner bought for future offsets: it retires part of the lot later in the year.
        (award,) = xs_auction.awards.all()
        services.credit_retire(
            actor=op,
            batch=xs.pk,
            account=award.account_id,
            quantity=parse_tonnes("1000"),
            beneficiary="Ningbo Precision Machinery Co.",
            purpose="Offsetting 2023 Scope 1 emissions",
            jurisdiction="CN-ZJ",
            reason="Voluntary retirement of part of the lot bought at the Xiangshan auction",
        )
        services.credit_transfer(
            actor=op,
            batch=zj.pk,
            sender=acct["zhanjiang-mangrove"].pk,
            recipient=acct["shenzhen-finance"].pk,
            quantity=parse_tonnes("1200"),
        )
        services.credit_retire(
            actor=op,
            batch=zj.pk,
            account=acct["shenzhen-finance"].pk,
            quantity=parse_tonnes("220.5"),
            beneficiary="Shenzhen Blue Finance",
            purpose="Carbon-neutral 2023 annual conference",
            jurisdiction="CN-GD",
        )
        services.credit_transfer(
            actor=op,
            batch=pt.pk,
            sender=acct["putian-oyster"].pk,
            recipient=acct["zhejiang-trading"].pk,
            quantity=parse_tonnes("3000"),
        )
        services.credit_transfer(
            actor=op,
            batch=rc.pk,
            sender=acct["rongcheng-seagrass"].pk,
            recipient=acct["zhejiang-trading"].pk,
            quantity=parse_tonnes("100"),
        )
        services.credit_cancel(
            actor=op,
            batch=pt.pk,
            account=acct["zhejiang-trading"].pk,
            quantity=parse_tonnes("40"),
            reason="Exported to another registry",
            destination="Fujian Marine Carbon Exchange",
        )

        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", password)
        Membership.objects.get_or_create(
            user=User.objects.get(username="admin"), defaults={"organization": operator}
        )
        self._user("registrar", registry, password)
        self._user("auditor", auditor, password)
        for i, bidder in enumerate(bidders, 1):
            self._user(f"bidder{i}", bidder, password, email=f"bidder{i}@bidders.example")
        for name, dev in devs.items():
            self._user(name, dev, password)
        assert Account.objects.filter(organization=registry, kind="buffer").exists()
