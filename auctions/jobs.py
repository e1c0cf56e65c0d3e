"""The auction pipeline's next steps, sent to the workers by task name.

The steps (``tasks``) call the pipeline and the services; the pipeline and the services enqueue
the next step. Enqueuing by name (``send_task``) instead of through the task objects keeps that
one-way: nothing here or in its callers imports ``tasks`` (they imported each other before).
The routing is by name too (``bluecarbon/queues.py``), so each step still goes to the auctions
queue; ``tests/test_jobs.py`` fails if a name here is not a registered task.
"""

from __future__ import annotations

import datetime as dt

from celery import current_app
from django.db import transaction

ADVANCE = "auctions.tasks.auction_advance_task"
CLOSE = "auctions.tasks.auction_close_task"
OPEN_BIDS = "auctions.tasks.auction_open_bids_task"
CLEAR = "auctions.tasks.auction_clear_task"
SETTLE = "auctions.tasks.auction_settle_task"
NOTIFY = "auctions.tasks.auction_notify_task"
NAMES = (ADVANCE, CLOSE, OPEN_BIDS, CLEAR, SETTLE, NOTIFY)


def send(name: str, *args: object, eta: dt.datetime | None = None) -> None:
    """Send the step now (at ``eta``, if given)."""
    current_app.send_task(name, args=args, eta=eta)


def after_commit(name: str, *args: object) -> None:
    """Send the step once the current transaction commits. Robust: the step that sends it is
    done; a lost message is beat's sweep to find (``auctions_due_task``)."""
    transaction.on_commit(lambda: send(name, *args), robust=True)
