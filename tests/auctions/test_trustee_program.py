"""The trustee program (``bluecarbon-audit trustee``, the audit package's installed command, as
a real process) against the real server on loopback, with real witness processes: three
trustee organizations make and register their keys, a 2-of-3 auction closes, and each trustee
releases only once a checkpoint its own witness policy accepts includes the close; a key an
insider registered in a trustee's name is refused. docs/auctions.md §3.6."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bluecarbon_audit
import pytest
from bluecarbon_audit.cosignature import Cosigner
from bluecarbon_audit.testing import start_witness
from django.conf import settings as django_settings

from auctions import services, trustees
from auctions.core import sealing
from auctions.models import Auction, TrusteeKey
from ledger import services as registry
from ledger import witnesses
from ledger.core.entry import decode_entry
from ledger.models import ApiKey, LedgerEntry, Role
from ledger.signing import get_signer
from tests import factories
from tests.browser import served

from .conftest import Market, wait_for_close
from .test_trustees import bid_all, trustee_auction

State = Auction.State


@pytest.fixture
def site(committed_db: None) -> Iterator[str]:
    """The server on a free port, served by a thread of this process on the committed test
    database (not pytest-django's live_server: see tests/portal/test_browser_portal.py)."""
    with served() as url:
        yield url


@pytest.fixture
def witness_keys(tmp_path: Path, settings: Any) -> Iterator[list[str]]:
    """Two witness processes of our log; the server's policy needs both."""
    key = get_signer().verifier().to_string()
    started = [
        start_witness(
            tmp_path / name, f"witness.example/{name}", {django_settings.LEDGER_ORIGIN: key}
        )
        for name in ("w1", "w2")
    ]
    policy = tmp_path / "witness-policy.txt"
    policy.write_text(
        "".join(f"witness {w.name.split('/')[-1]} {w.verifier_key} {w.url}\n" for w in started)
        + "group both all w1 w2\nquorum both\n"
    )
    settings.LEDGER_WITNESS_POLICY_FILE = str(policy)
    yield [w.verifier_key for w in started]
    for w in started:
        w.stop()


@dataclass
class Trustee:
    """A trustee organization, its API key and its program's directory."""

    org: Any
    dir: Path
    api_key: str
    site: str
    trust: list[str]

    def run(self, *args: str, trust: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        """``bluecarbon-audit trustee <action> DIR --server --api-key [trust flags] ARGS``."""
        action, *rest = args
        flags = ["--server", self.site, "--api-key", self.api_key, *rest]
        if action in ("release", "run"):
            flags += self.trust if trust is None else trust
        return cli("trustee", action, str(self.dir), *flags)

    def run_once(self, **kw: Any) -> tuple[int, list[dict[str, Any]]]:
        result = self.run("run", "--once", "--json", "--min-free", "2", "--count", "3", **kw)
        assert result.returncode in (0, 1), result.stderr
        return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]

    def state(self) -> dict[str, Any]:
        return json.loads((self.dir / "state.json").read_text())


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``bluecarbon-audit ARGS`` as a process: the package this test imported (this tree's),
    whatever the virtualenv's editable install points at."""
    env = {**os.environ, "PYTHONPATH": str(Path(bluecarbon_audit.__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "bluecarbon_audit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def make_trustee(tmp_path: Path, site: str, trust: list[str], name: str) -> Trustee:
    org = factories.organization(Role.TRUSTEE)
    _, secret = registry.apikey_create(
        organization=org.pk, name="trustee program", scopes=[ApiKey.Scope.TRUSTEE]
    )
    t = Trustee(org, tmp_path / name, secret, site, trust)
    init = cli("trustee", "init", str(t.dir))
    assert init.returncode == 0, init.stderr
    return t


@pytest.fixture
def board(tmp_path: Path, site: str, witness_keys: list[str]) -> list[Trustee]:
    """Three trustees, each with its own directory and API key; their policy pins the log's
    key and needs both witnesses' cosignatures."""
    trust = ["--key", get_signer().verifier().to_string()]
    for key in witness_keys:
        trust += ["--witness", key]
    return [
        make_trustee(tmp_path, site, trust, name) for name in ("exchange", "registry", "auditor")
    ]


@dataclass
class Orgs:
    orgs: list[Any]


def register(trustee: Trustee, count: int = 3) -> None:
    result = trustee.run("keys", "--count", str(count), "--json")
    assert result.returncode == 0, result.stderr + result.stdout


def released(a: Auction) -> set[int]:
    return {
        k.organization_id for k in TrusteeKey.objects.filter(auction=a, private_key__isnull=False)
    }


def cosign_latest_checkpoint() -> None:
    registry.ledger_checkpoint_issue()
    assert {o.status for o in witnesses.checkpoint_witness()} == {"cosigned"}


def test_each_trustee_releases_once_a_witnessed_checkpoint_includes_the_close(
    board: list[Trustee], verify_ledger: Any
) -> None:
    for t in board:
        register(t)
        assert t.state()["next_index"] == 3 and t.state()["organization"] == t.org.pk
        assert TrusteeKey.objects.filter(organization=t.org).count() == 3
    exchange, registry_org, auditor = board
    market = Market()
    a = trustee_auction(market, Orgs([t.org for t in board]), closes_in=12)
    bid_all(market, a)

    # Open: nothing released.
    for t in board:
        code, events = t.run_once()
        assert code == 0 and [e["event"] for e in events] == ["waiting"], events
    assert released(a) == set()

    # Closed, but no checkpoint includes the close yet; then one signed that no witness has
    # cosigned: nothing released.
    wait_for_close(a)
    assert services.auction_close(auction=a.pk)
    code, events = exchange.run_once()
    assert code == 0 and [e["event"] for e in events] == ["waiting"], events
    registry.ledger_checkpoint_issue()
    code, events = exchange.run_once()
    assert [e["event"] for e in events] == ["waiting"], events
    assert "short of the quorum" in events[0]["message"]
    assert released(a) == set()

    # Cosigned by the server's witnesses, but the trustee's own policy names a witness the
    # server does not use: still nothing.
    witnesses.checkpoint_witness()
    stranger = Cosigner.generate("witness.example/w3").verifier().to_string()
    strict = [*exchange.trust, "--witness", stranger]
    code, events = exchange.run_once(trust=strict)
    assert [e["event"] for e in events] == ["waiting"], events
    assert released(a) == set()

    # Its own policy met: two trustees release, and the auction opens and clears with them.
    for t in (exchange, registry_org):
        code, events = t.run_once()
        assert code == 0 and [e["event"] for e in events] == ["released"], events
        assert events[0]["cosigned_by"] == ["witness.example/w1", "witness.example/w2"]
        assert t.state()["released"][0]["auction"] == a.pk
    assert released(a) == {exchange.org.pk, registry_org.org.pk}
    # The release enqueues the pipeline's next step: a worker left running by an earlier test
    # of the session (on PostgreSQL, the same committed database) may clear and settle first.
    services.auction_bids_open(auction=a.pk, first=0, last=2**62)
    services.auction_clear(auction=a.pk)
    a.refresh_from_db()
    assert a.state in (State.CLEARED, State.SETTLED) and a.clearing_price == 10_000
    entry = decode_entry(bytes(LedgerEntry.objects.get(seq=a.result_seq).body))
    assert entry.data["opened_with"] == [1, 2]
    services.auction_settle(auction=a.pk)
    a.refresh_from_db()
    assert a.state == State.SETTLED

    # A release again is no release; the third trustee is no longer needed.
    result = exchange.run("release", "--auction", str(a.pk))
    assert result.returncode == 0 and result.stdout.startswith("already"), result.stdout
    code, events = auditor.run_once()
    assert code == 0 and [e["event"] for e in events] == ["skipped"], events
    assert auditor.state()["finished"] == {str(a.pk): "settled"}
    assert released(a) == {exchange.org.pk, registry_org.org.pk}
    verify_ledger()


def test_a_key_an_insider_registered_in_a_trustees_name_is_refused(
    board: list[Trustee], verify_ledger: Any
) -> None:
    exchange, registry_org, auditor = board
    # Before the auditor registers its keys, an insider registers one of its own making in the
    # auditor's name: the oldest unused key, the one the next auction takes.
    foreign = sealing.generate_private_key()
    trustees.trustee_keys_register(
        actor=factories.actor_for(auditor.org), public_keys=[sealing.public_key_of(foreign)]
    )
    for t in board:
        register(t)
    code, events = auditor.run_once()
    assert code == 1 and [(e["event"], e["code"]) for e in events] == [("alert", "foreign_key")]

    market = Market()
    a = trustee_auction(market, Orgs([t.org for t in board]), closes_in=3)
    assert bytes(TrusteeKey.objects.get(auction=a, organization=auditor.org).public_key) == (
        sealing.public_key_of(foreign)
    )
    bid_all(market, a)
    wait_for_close(a)
    assert services.auction_close(auction=a.pk)
    cosign_latest_checkpoint()

    result = auditor.run("release", "--auction", str(a.pk))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith(f"REFUSED (key_not_ours) auction {a.pk}: "), result.stdout
    code, events = auditor.run_once()
    assert code == 1
    assert ("refused", "key_not_ours") in [(e["event"], e.get("code")) for e in events]
    assert released(a) == set()
    assert auditor.state()["released"] == []

    # The others release; the auction clears without the auditor.
    for t in (exchange, registry_org):
        assert t.run_once()[0] == 0
    assert released(a) == {exchange.org.pk, registry_org.org.pk}
    services.auction_bids_open(auction=a.pk, first=0, last=2**62)
    assert services.auction_clear(auction=a.pk)
    verify_ledger()


def test_a_key_registration_retried_after_a_crash_registers_nothing_twice(
    board: list[Trustee],
) -> None:
    t = board[0]
    before = (t.dir / "state.json").read_bytes()
    register(t, 3)
    after = (t.dir / "state.json").read_bytes()
    # The crash: the keys were registered but the state was not written.
    (t.dir / "state.json").write_bytes(before)
    register(t, 3)
    assert TrusteeKey.objects.filter(organization=t.org).count() == 3
    assert LedgerEntry.objects.filter(type="trustee.keys").count() == 1
    assert (t.dir / "state.json").read_bytes() == after
    # A run keeps two unused keys registered: three are, so it registers none.
    code, events = t.run_once()
    assert code == 0 and events == []
