"""Sealing to trustees (docs/auctions.md §3): any k of an auction's n trustees open its bids
after the close, fewer cannot, and neither can the operator with its database and every secret
the server holds. Each attack here is one an insider, a bidder or a trustee could try."""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from bluecarbon_audit.auctions import trustee_keys
from django.conf import settings
from django.db import connection
from django.utils import timezone

from auctions import pipeline, services, trustees
from auctions.core import sealing
from auctions.exceptions import Conflict, InvalidInput, NotFound, PermissionDenied, Unprocessable
from auctions.models import Auction, Bid, Deposit, TrusteeKey
from ledger.core.entry import decode_entry
from ledger.models import LedgerEntry, Role
from tests import factories

from .conftest import TONNE, Market, wait_for_close

State = Auction.State


class Trustees:
    """n trustee organizations, each with a seed it derives its keys from (as the trustee
    program does) and some keys registered."""

    def __init__(self, n: int, keys_each: int = 2) -> None:
        self.orgs = [factories.organization(Role.TRUSTEE) for _ in range(n)]
        self.seeds = {org.pk: trustee_keys.new_seed() for org in self.orgs}
        self.next = dict.fromkeys(self.seeds, 0)
        for org in self.orgs:
            self.register(org, keys_each)

    def register(self, org: Any, count: int) -> list[TrusteeKey]:
        first = self.next[org.pk]
        self.next[org.pk] += count
        return trustees.trustee_keys_register(
            actor=factories.actor_for(org),
            public_keys=[
                trustee_keys.public_key(self.seeds[org.pk], i) for i in range(first, first + count)
            ],
        )

    def private(self, a: Auction, org: Any) -> bytes:
        key = TrusteeKey.objects.get(auction=a, organization=org)
        index = trustee_keys.find(self.seeds[org.pk], bytes(key.public_key))
        assert index is not None
        return trustee_keys.private_key(self.seeds[org.pk], index)

    def release(self, a: Auction, org: Any) -> TrusteeKey:
        return trustees.trustee_release(
            actor=factories.actor_for(org), auction=a.pk, private_key=self.private(a, org)
        )


@pytest.fixture
def board(db: None) -> Trustees:
    return Trustees(3)


def trustee_auction(market: Market, board: Trustees, k: int = 2, **rules: Any) -> Auction:
    closes_in = rules.pop("closes_in", 1.0)
    now = timezone.now()
    return market.auction(
        closes_in=closes_in,
        sealing_mode="trustees",
        trustee_ids=[o.pk for o in board.orgs],
        threshold=k,
        release_by=now + dt.timedelta(seconds=closes_in + rules.pop("release_in", 60)),
        **rules,
    )


def bid_all(market: Market, a: Auction) -> None:
    b1, b2, b3 = market.bidders
    market.bid(a, b1, [(10_600, 60), (9_000, 100)])
    market.bid(a, b2, [(10_000, 50)])
    market.bid(a, b3, [(3_100, 10)])


def open_and_clear(a: Auction) -> Auction:
    services.auction_bids_open(auction=a.pk, first=0, last=2**62)
    assert services.auction_clear(auction=a.pk)
    a.refresh_from_db()
    return a


def test_any_two_of_three_trustees_open_the_bids_and_the_ledger_verifies(
    market: Market, board: Trustees, verify_ledger
) -> None:
    a = trustee_auction(market, board)
    assert a.public_key is None and a.private_key_sealed is None
    assert [k.organization_id for k in trustees.auction_keys(a)] == [o.pk for o in board.orgs]
    bid_all(market, a)
    wait_for_close(a)
    assert services.auction_close(auction=a.pk)
    first, _, third = board.orgs
    board.release(a, third)
    board.release(a, first)
    a = open_and_clear(a)
    assert a.state == State.CLEARED and a.private_key is None
    assert a.clearing_price == 10_000  # 110 lots asked for 100: the 50-lot bid at 100.00 is cut
    entry = decode_entry(bytes(LedgerEntry.objects.get(seq=a.result_seq).body))
    assert entry.data["sealing"] == "trustees" and entry.data["opened_with"] == [1, 3]
    assert "private_key" not in entry.data
    assert services.auction_settle(auction=a.pk)
    assert not Bid.objects.filter(auction=a, reason__startswith="unreadable").exists()
    verify_ledger()


def test_fewer_than_the_threshold_open_nothing(market: Market, board: Trustees) -> None:
    a = trustee_auction(market, board)
    bid_all(market, a)
    wait_for_close(a)
    services.auction_close(auction=a.pk)
    board.release(a, board.orgs[1])
    assert not services.keys_ready(a.pk)
    assert services.auction_bids_open(auction=a.pk, first=0, last=2**62) == 0
    with pytest.raises(services.NotReady):
        services.auction_clear(auction=a.pk)
    # And by hand, with the one released key and every share box: the body does not open.
    key = sealing.load_private_key(board.private(a, board.orgs[1]))
    for bid in Bid.objects.filter(auction=a):
        tiers, error = sealing.open_threshold_for_book(
            released={2: key},
            ciphertext=bytes(bid.ciphertext),
            trustees=3,
            origin=settings.LEDGER_ORIGIN,
            auction=a.pk,
            bidder=bid.bidder_id,
        )
        assert tiers is None and error is not None


def _candidate_keys() -> set[bytes]:
    """Every 32-byte value the operator holds: each binary column of every table, and each
    secret file of the server (raw, hex or base64, line by line)."""
    found: set[bytes] = set()

    def add(blob: bytes) -> None:
        for start in range(0, max(len(blob) - 31, 0)):
            found.add(blob[start : start + 32])

    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        for table in tables:
            for column in connection.introspection.get_table_description(cursor, table):
                cursor.execute(f'SELECT "{column.name}" FROM "{table}"')
                for (value,) in cursor.fetchall():
                    if isinstance(value, (bytes, memoryview)):
                        add(bytes(value))
                    elif isinstance(value, str) and 40 <= len(value) <= 200:
                        for decode in (bytes.fromhex, base64.b64decode):
                            with contextlib.suppress(ValueError, binascii.Error):
                                add(decode(value))
    for path in Path(settings.VAR_DIR).rglob("*"):
        # Not the SQLite database's own files, whose rows the loop above read: closing a file
        # of a database this process holds open drops its POSIX locks on it (SQLite's "How To
        # Corrupt", §2.2), and the session's worker writing meanwhile corrupted the test
        # database ("database disk image is malformed" in the tests after this one).
        if ".sqlite3" in path.name:
            continue
        if path.is_file() and path.stat().st_size < 100_000:
            data = path.read_bytes()
            add(data)
            for line in data.split():
                for decode in (bytes.fromhex, base64.b64decode):
                    with contextlib.suppress(ValueError, binascii.Error):
                        add(decode(line.decode("ascii", "replace")))
    return found


def test_the_operator_with_its_database_and_every_server_secret_cannot_open_a_bid(
    market: Market, board: Trustees
) -> None:
    a = trustee_auction(market, board, closes_in=30)
    market.bid(a, market.bidders[0], [(10_600, 60)])
    bid = Bid.objects.get(auction=a)
    ciphertext = bytes(bid.ciphertext)
    candidates = _candidate_keys()
    assert len(candidates) > 1000  # it did look
    boxes = [ciphertext[sealing.SHARE_BOX * i : sealing.SHARE_BOX * (i + 1)] for i in range(3)]
    body = ciphertext[sealing.SHARE_BOX * 3 :]
    bidder = bid.bidder_id
    opened = 0
    for raw in candidates:
        key = sealing.load_private_key(raw)
        for position, box in enumerate(boxes, 1):
            info = sealing.share_info(settings.LEDGER_ORIGIN, a.pk, bidder, position)
            try:
                sealing.SUITE.decrypt(box, key, info=info)
                opened += 1
            except Exception:
                continue
        try:
            sealing.SUITE.decrypt(
                body, key, info=sealing.info(settings.LEDGER_ORIGIN, a.pk, bidder)
            )
            opened += 1
        except Exception:
            continue
    assert opened == 0
    # The check can succeed: with the trustees' keys, two boxes open.
    for org in board.orgs[:2]:
        key = sealing.load_private_key(board.private(a, org))
        position = board.orgs.index(org) + 1
        info = sealing.share_info(settings.LEDGER_ORIGIN, a.pk, bidder, position)
        assert len(sealing.SUITE.decrypt(boxes[position - 1], key, info=info)) == 33


def test_a_released_key_that_is_not_the_registered_one_is_refused(
    market: Market, board: Trustees, refused
) -> None:
    a = trustee_auction(market, board)
    bid_all(market, a)
    wait_for_close(a)
    services.auction_close(auction=a.pk)
    org = board.orgs[0]
    wrong = trustee_keys.private_key(board.seeds[org.pk], 1)  # its other key
    with refused(Unprocessable, "key_mismatch"):
        trustees.trustee_release(actor=factories.actor_for(org), auction=a.pk, private_key=wrong)
    with refused(Unprocessable, "key_mismatch"):
        # Another trustee's key for this same auction.
        trustees.trustee_release(
            actor=factories.actor_for(org),
            auction=a.pk,
            private_key=board.private(a, board.orgs[1]),
        )


def test_no_key_is_taken_before_the_close_and_only_from_the_auctions_trustees(
    market: Market, board: Trustees, refused
) -> None:
    a = trustee_auction(market, board, closes_in=30)
    org = board.orgs[0]
    with refused(Conflict, "auction_not_closed"):
        board.release(a, org)
    outsider = factories.organization(Role.TRUSTEE)
    with refused(NotFound, "not_found"):
        trustees.trustee_release(
            actor=factories.actor_for(outsider), auction=a.pk, private_key=board.private(a, org)
        )
    bidder = market.bidders[0]
    with refused(PermissionDenied, "permission_denied"):
        trustees.trustee_release(
            actor=factories.actor_for(bidder), auction=a.pk, private_key=board.private(a, org)
        )


def test_releasing_the_same_key_twice_writes_one_entry(market: Market, board: Trustees) -> None:
    a = trustee_auction(market, board)
    wait_for_close(a)
    services.auction_close(auction=a.pk)
    org = board.orgs[2]
    board.release(a, org)
    entries = LedgerEntry.objects.count()
    again = board.release(a, org)
    assert again.released_seq is not None and LedgerEntry.objects.count() == entries


def test_scheduling_needs_an_unused_key_of_every_trustee(
    market: Market, board: Trustees, refused
) -> None:
    trustee_auction(market, board, closes_in=30)
    trustee_auction(market, board, closes_in=30)  # each trustee's second and last key
    draft = trustee_auction(market, board, closes_in=30, schedule=False)
    with refused(Conflict, "trustee_keys_exhausted"):
        services.auction_schedule(actor=market.sell, auction=draft.pk)
    board.register(board.orgs[0], 1)
    board.register(board.orgs[1], 1)
    board.register(board.orgs[2], 1)
    assert services.auction_schedule(actor=market.sell, auction=draft.pk).state == State.OPEN


def test_the_rules_name_trustees_with_the_role_and_a_threshold_they_can_meet(
    market: Market, board: Trustees
) -> None:
    ids = [o.pk for o in board.orgs]
    later = timezone.now() + dt.timedelta(hours=1)
    for trustee_ids, k, code in (
        (ids, 4, "threshold"),
        (ids, 0, "threshold"),
        ([*ids, market.bidders[0].pk], 2, "trustees"),
        ([ids[0], ids[0]], 1, "trustees"),
        ([], 1, "trustees"),
    ):
        with pytest.raises(InvalidInput) as err:
            market.auction(
                sealing_mode="trustees", trustee_ids=trustee_ids, threshold=k, release_by=later
            )
        assert code in err.value.detail, err.value.detail
    with pytest.raises(InvalidInput) as err:
        market.auction(sealing_mode="operator_key", trustee_ids=ids, threshold=2)
    with pytest.raises(InvalidInput) as err:
        market.auction(
            sealing_mode="trustees",
            trustee_ids=ids,
            threshold=2,
            release_by=timezone.now() + dt.timedelta(seconds=5),
        )
    assert err.value.detail == {"release_by": "before_closing"}


def test_an_auction_whose_trustees_miss_the_deadline_fails_with_deposits_released(
    market: Market, board: Trustees, verify_ledger
) -> None:
    a = trustee_auction(market, board, deposit_required=100, release_in=0.5)
    for bidder in market.bidders:
        market.deposit(a, bidder, 100)
    bid_all(market, a)
    wait_for_close(a)
    services.auction_close(auction=a.pk)
    board.release(a, board.orgs[0])
    assert not services.auction_release_overdue(auction=a.pk)  # not yet
    time.sleep(max(0.0, (a.release_by - timezone.now()).total_seconds()) + 0.05)
    assert services.auction_release_overdue(auction=a.pk)
    with pytest.raises(Conflict) as err:  # too late: the auction failed
        board.release(a, board.orgs[1])
    assert str(err.value.code) == "auction_wrong_state"
    a.refresh_from_db()
    assert a.state == State.FAILED
    assert "released 1 of the 2 keys needed" in a.state_reason
    assert set(Deposit.objects.filter(auction=a).values_list("state", flat=True)) == {"released"}
    assert pipeline.advance(a.pk) in ("notify", "nothing")
    verify_ledger()


def test_a_trustee_sealed_bid_has_the_shape_of_its_auction(
    market: Market, board: Trustees, refused
) -> None:
    a = trustee_auction(market, board, closes_in=30)
    plain = sealing.seal(
        public_key=trustee_keys.public_key(board.seeds[board.orgs[0].pk], 0),
        origin=settings.LEDGER_ORIGIN,
        auction=a.pk,
        bidder=market.bidders[0].pk,
        tiers=[{"price": 10_000, "lots": 1}],
    )
    with refused(InvalidInput, "malformed_ciphertext"):
        services.bid_submit(actor=market.actor(market.bidders[0]), auction=a.pk, ciphertext=plain)


def test_a_tampered_release_or_key_table_is_caught_by_the_verifier(
    market: Market, board: Trustees, verify_ledger
) -> None:
    a = trustee_auction(market, board)
    bid_all(market, a)
    wait_for_close(a)
    services.auction_close(auction=a.pk)
    board.release(a, board.orgs[0])
    key = TrusteeKey.objects.get(auction=a, organization=board.orgs[1])
    # An insider writes a key of its own making into the table as if the trustee had released.
    TrusteeKey.objects.filter(pk=key.pk).update(private_key=sealing.generate_private_key())
    with pytest.raises(AssertionError, match="trustee key"):
        verify_ledger()


def test_the_bids_open_quantities_as_sealed(market: Market, board: Trustees) -> None:
    a = trustee_auction(market, board, k=3)
    market.bid(a, market.bidders[0], [(10_600, 100)])
    wait_for_close(a)
    services.auction_close(auction=a.pk)
    for org in reversed(board.orgs):
        board.release(a, org)
    a = open_and_clear(a)
    assert a.clearing_price == 10_600
    assert Bid.objects.get(auction=a).awarded_lots == 100
    assert a.quantity == 100 * TONNE


def test_trustees_register_keys_and_release_through_the_api(
    market: Market, board: Trustees, verify_ledger
) -> None:
    from rest_framework.test import APIClient

    from ledger import services as registry
    from ledger.models import ApiKey

    def client(org: Any, *scopes: str) -> APIClient:
        _, secret = registry.apikey_create(organization=org.pk, name="k", scopes=scopes)
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return c

    org = board.orgs[0]
    trustee = client(org, ApiKey.Scope.TRUSTEE)
    seed = board.seeds[org.pk]
    fresh = [base64.b64encode(trustee_keys.public_key(seed, i)).decode() for i in (10, 11)]
    r = trustee.post("/api/v1/trustee-keys", {"public_keys": fresh}, format="json")
    assert r.status_code == 201, r.content
    assert [k["public_key"] for k in r.json()] == fresh
    listed = trustee.get("/api/v1/trustee-keys").json()["results"]
    assert len(listed) == 4 and all(k["auction"] is None for k in listed)
    # Without the scope, or as a bidder: no.
    assert (
        client(org, ApiKey.Scope.READ)
        .post("/api/v1/trustee-keys", {"public_keys": fresh}, format="json")
        .status_code
        == 403
    )

    a = trustee_auction(market, board)
    sealing_info = APIClient().get(f"/api/v1/auctions/{a.pk}").json()["sealing"]
    assert sealing_info["mode"] == "trustees" and sealing_info["threshold"] == 2
    assert sealing_info["public_key"] is None
    assert [t["trustee"] for t in sealing_info["trustees"]] == [o.pk for o in board.orgs]
    bidder = market.bidders[0].pk
    info = sealing_info["info_prefix"].encode() + str(bidder).encode()
    assert info == sealing.info(settings.LEDGER_ORIGIN, a.pk, bidder)
    share = sealing_info["share_info_prefix"].encode() + f"{bidder}\n2".encode()
    assert share == sealing.share_info(settings.LEDGER_ORIGIN, a.pk, bidder, 2)
    bid_all(market, a)
    wait_for_close(a)
    services.auction_close(auction=a.pk)
    url = f"/api/v1/auctions/{a.pk}/key-release"
    wrong = base64.b64encode(trustee_keys.private_key(seed, 11)).decode()
    r = trustee.post(url, {"private_key": wrong}, format="json")
    assert r.status_code == 422 and r.json()["code"] == "key_mismatch", r.content
    right = base64.b64encode(board.private(a, org)).decode()
    r = trustee.post(url, {"private_key": right}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["released_seq"] is not None
    assert APIClient().get(f"/api/v1/auctions/{a.pk}").json()["sealing"]["trustees"][0]["released"]
    verify_ledger()


@pytest.mark.parametrize(("k", "n"), [(1, 1), (1, 3), (2, 2), (3, 5), (5, 5)])
def test_every_threshold_opens_with_k_keys_and_not_with_fewer(k: int, n: int) -> None:
    keys = [sealing.generate_private_key() for _ in range(n)]
    sealed = sealing.seal_threshold(
        trustee_keys=[sealing.public_key_of(x) for x in keys],
        threshold=k,
        origin="o",
        auction=1,
        bidder=2,
        tiers=[{"price": 7, "lots": 1}],
    )
    assert len(sealed) == n * sealing.SHARE_BOX + 48 + 256
    for first in range(n - k + 1):
        chosen = {p: sealing.load_private_key(keys[p - 1]) for p in range(first + 1, first + k + 1)}
        opened = sealing.open_threshold_for_book(
            released=chosen, ciphertext=sealed, trustees=n, origin="o", auction=1, bidder=2
        )
        assert opened == ([{"lots": 1, "price": 7}], None)
        if k > 1:
            fewer = dict(list(chosen.items())[:-1])
            tiers, error = sealing.open_threshold_for_book(
                released=fewer, ciphertext=sealed, trustees=n, origin="o", auction=1, bidder=2
            )
            assert tiers is None and error is not None


def test_only_the_kth_release_moves_the_auction_on(
    market: Market, board: Trustees, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    """One kick of the opening, not one per release: each kick enqueues every chunk of bids,
    and chunks enqueued twice were opened twice."""
    from auctions import jobs

    sent: list[tuple[str, tuple[object, ...]]] = []
    monkeypatch.setattr(jobs, "send", lambda name, *args, eta=None: sent.append((name, args)))
    a = trustee_auction(market, board)
    wait_for_close(a)
    services.auction_close(auction=a.pk)
    advances = []
    for org in board.orgs:  # 1 of 2, 2 of 2, then one more than needed
        sent.clear()
        with django_capture_on_commit_callbacks(execute=True):
            board.release(a, org)
        advances.append(sent.count((jobs.ADVANCE, (a.pk,))))
    assert advances == [0, 1, 0]
