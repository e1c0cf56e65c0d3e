"""Small registry ledgers built in pure Python (``bluecarbon_audit.testing.MemoryLog``): the
entries the registry writes, with the shapes of docs/ledger-format.md §2, hash-chained and
checkpointed, to write as tile directories and verify. No server, no Django."""

from __future__ import annotations

import random

from bluecarbon_audit.testing import MemoryLog

ORIGIN = "registry.example/ledger"


def registry(log: MemoryLog, *, accounts: int = 6) -> None:
    """An operator, a registry (with its buffer pool), a developer, buyers; a methodology, a
    project and two batches issued to the developer's account 3."""
    log.append(
        "org.register",
        {"organization": {"handle": "ops", "id": 1, "name": "Operator", "roles": ["operator"]}},
    )
    log.append(
        "org.register",
        {"organization": {"handle": "reg", "id": 2, "name": "Registry", "roles": ["registry"]}},
    )
    log.append(
        "account.open",
        {"account": {"id": 1, "kind": "buffer", "name": "Buffer pool", "organization": 2}},
    )
    log.append(
        "org.register",
        {"organization": {"handle": "dev", "id": 3, "name": "Developer", "roles": ["developer"]}},
    )
    for account in range(2, accounts + 2):
        log.append(
            "account.open",
            {"account": {"id": account, "kind": "holding", "name": "Main", "organization": 3}},
        )
    log.append(
        "methodology.register",
        {
            "methodology": {
                "code": "VM0033",
                "ecosystems": ["mangrove"],
                "id": 1,
                "name": "Tidal wetland restoration",
                "standard": "Verra VCS",
            }
        },
    )
    log.append("project.register", {"project": project(1)})
    for batch in (1, 2):
        log.append(
            "batch.issue",
            {
                "batch": {
                    "buffer_share_bp": 1000,
                    "buffer_withheld": 100_000,
                    "id": batch,
                    "issued": 1_000_000,
                    "monitoring_end": f"202{batch}-12-31",
                    "monitoring_start": f"202{batch}-01-01",
                    "origin_registry": "",
                    "origin_tx_id": None,
                    "project": 1,
                    "serial": f"BC-P1-202{batch}0101-202{batch}1231-001",
                    "verification_body": "DNV",
                    "verification_report_sha256": "ab" * 32,
                    "vintage": 2020 + batch,
                },
                "buffer_account": 1,
                "holder": 2,
            },
        )


def project(project_id: int, name: str = "Mangroves") -> dict[str, object]:
    return {
        "area_m2": 12_000_000,
        "code": f"P{project_id}",
        "developer": 3,
        "ecosystem": "mangrove",
        "id": project_id,
        "jurisdiction": "CN-GD",
        "location": {"coordinates": ["110.4", "21.2"], "type": "Point"},
        "methodology": 1,
        "name": name,
        "origin_id": f"P{project_id}",
        "origin_registry": "demo",
        "registry": 2,
        "status": "active",
        "storage_pathway": "biomass",
        "validation_body": "CQC",
    }


def transfers(log: MemoryLog, count: int, *, accounts: int = 6, seed: int = 7) -> None:
    """``count`` transfers of a few kg among accounts 2.., in batch 1 or 2, none overdrawn;
    every 50th is a retirement instead."""
    rng = random.Random(seed)
    balances = {(2, 1): 900_000, (2, 2): 900_000}
    for _ in range(count):
        held = [k for k, v in balances.items() if v >= 10]
        src, batch = rng.choice(held)
        if len(log.entries) % 50 == 0:
            seq = len(log.entries)
            log.append(
                "credit.retire",
                {
                    "retirement": {
                        "account": src,
                        "batch": batch,
                        "beneficiary": "Ningbo Coastal Energy",
                        "certificate": f"BCR-2026-{seq:010d}",
                        "jurisdiction": "CN-ZJ",
                        "purpose": "Offsetting",
                        "quantity": 3,
                        "reason": "",
                    }
                },
            )
            balances[(src, batch)] -= 3
            continue
        dst = rng.choice([a for a in range(2, accounts + 2) if a != src])
        qty = rng.randint(1, 9)
        log.append("credit.transfer", {"batch": batch, "from": src, "quantity": qty, "to": dst})
        balances[(src, batch)] -= qty
        balances[(dst, batch)] = balances.get((dst, batch), 0) + qty


def ledger(size: int, *, seed: int = 7) -> MemoryLog:
    """A valid registry ledger of exactly ``size`` entries (at least 15)."""
    log = MemoryLog(ORIGIN)
    registry(log)
    transfers(log, size - len(log.entries), seed=seed)
    return log
