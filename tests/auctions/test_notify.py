"""An auction's result mail goes to the outbox with the auction's "notified" mark, under its row
lock, and is sent only after that transaction commits (issue 15, part 5; ledger/mail.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import transaction

from auctions import services
from auctions.models import Auction
from ledger.models import Membership, OutboxMail
from ledger.tasks import mail_send_task
from tests.auctions.conftest import TONNE, Market, run_to_settlement


def _users(m: Market) -> None:
    User = get_user_model()
    for i, org in enumerate(m.bidders):
        user = User.objects.create_user(f"bidder{i}", email=f"bidder{i}@example.org")
        Membership.objects.create(user=user, organization=org)


@pytest.mark.django_db
def test_the_result_mail_is_written_under_the_lock_and_sent_after_the_commit(
    django_capture_on_commit_callbacks,
):
    m = Market()
    _users(m)
    a = m.auction(closes_in=1, quantity=100 * TONNE, reserve=3000)
    b1, b2, _ = m.bidders
    m.bid(a, b1, [(11000, 60)])
    m.bid(a, b2, [(10500, 50)])
    a = run_to_settlement(a)
    assert a.state == Auction.State.SETTLED

    with django_capture_on_commit_callbacks() as hooks, transaction.atomic():
        assert services.auction_notify(auction=a.pk) == 2  # one to each bidder's users
        assert mail.outbox == []  # nothing sent while the auction's row is locked
        assert OutboxMail.objects.filter(status=OutboxMail.Status.PENDING).count() == 2
    assert len(hooks) == 1

    assert services.auction_notify(auction=a.pk) == 0  # once: the mark is set with the rows
    assert mail_send_task() == 2
    bodies = {tuple(message.to): message.body for message in mail.outbox}
    assert bodies[("bidder0@example.org",)].startswith(f"Auction {a.pk} ({a.title}) has cleared")
    assert "awarded 60 lot(s)" in bodies[("bidder0@example.org",)]
    assert "awarded 40 lot(s)" in bodies[("bidder1@example.org",)]


@pytest.mark.django_db
def test_a_notification_rolled_back_sends_nothing_and_can_run_again():
    m = Market()
    _users(m)
    a = m.auction(closes_in=1, quantity=100 * TONNE, reserve=3000)
    m.bid(a, m.bidders[0], [(11000, 60)])
    a = run_to_settlement(a)

    with pytest.raises(RuntimeError), transaction.atomic():
        services.auction_notify(auction=a.pk)
        raise RuntimeError("the worker's transaction failed after the notification")
    assert not OutboxMail.objects.exists()
    assert mail_send_task() == 0
    assert Auction.objects.get(pk=a.pk).notified_at is None
    assert services.auction_notify(auction=a.pk) == 1
    assert mail_send_task() == 1
