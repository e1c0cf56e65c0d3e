"""The listings' timed work, sent to the workers by task name (as ``auctions/jobs.py``): nothing
that enqueues it imports ``tasks``. Routed to the auctions queue (``bluecarbon/queues.py``), the
market's timers."""

from __future__ import annotations

import datetime as dt

from celery import current_app

EXPIRE = "listings.tasks.listing_expire_task"
NAMES = (EXPIRE,)


def send(name: str, *args: object, eta: dt.datetime | None = None) -> None:
    current_app.send_task(name, args=args, eta=eta)
