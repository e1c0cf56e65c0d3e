"""``manage.py seed_methodologies``: the blue carbon methodologies every registry needs.

Idempotent: registers (through the service, so each is a ledger entry) only the missing ones.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from ledger import services
from ledger.actors import Actor
from ledger.models import Methodology

METHODOLOGIES = [
    (
        "VM0033",
        "Methodology for Tidal Wetland and Seagrass Restoration",
        "Verra VCS",
        ["mangrove", "salt_marsh", "seagrass", "tidal_flat"],
    ),
    (
        "VMD0042",
        "Methodology for Tidal Wetland and Seagrass Restoration: module",
        "Verra VCS",
        ["mangrove", "salt_marsh", "seagrass"],
    ),
    (
        "AR-AM0014",
        "Afforestation and reforestation of degraded mangrove habitats",
        "CDM",
        ["mangrove"],
    ),
    (
        "GS-BLUE-CARBON",
        "Gold Standard blue carbon activity requirements",
        "Gold Standard",
        ["mangrove", "salt_marsh", "seagrass"],
    ),
    (
        "HY/T 0349-2022",
        "Marine carbon sink accounting methods",
        "China MNR (HY/T)",
        ["mangrove", "salt_marsh", "seagrass", "macroalgae", "shellfish"],
    ),
    ("CCER-14-003", "Salt marsh vegetation restoration (CCER)", "China CCER", ["salt_marsh"]),
    ("CCER-14-004", "Seagrass bed restoration (CCER)", "China CCER", ["seagrass"]),
]

# The Chinese titles of the Chinese standards (the others publish none; pages fall back to the
# English name).
NAMES_ZH = {
    "HY/T 0349-2022": "海洋碳汇核算方法",
    "CCER-14-003": "盐沼植被修复\uff08CCER\uff09",
    "CCER-14-004": "海草床修复\uff08CCER\uff09",
}


def methodologies_seed(*, actor: Actor) -> list[Methodology]:
    known = set(Methodology.objects.values_list("code", flat=True))
    return [
        services.methodology_register(
            actor=actor,
            code=code,
            name=name,
            name_zh=NAMES_ZH.get(code, ""),
            standard=std,
            ecosystems=eco,
        )
        for code, name, std, eco in METHODOLOGIES
        if code not in known
    ]


class Command(BaseCommand):
    help = "Register the standard blue carbon methodologies that are missing."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic(durable=True):
            added = methodologies_seed(actor=Actor.system("seed_methodologies"))
        self.stdout.write(f"{len(added)} methodologies registered")
