"""Work sent to the workers by task name (``auctions/jobs.py``, ``ledger/jobs.py``): every name
is a task the workers know, and each is routed to its kind's queue, as the task objects were."""

from __future__ import annotations

from auctions import jobs
from bluecarbon import queues
from bluecarbon.celery import app
from ledger import jobs as ledger_jobs


def test_every_step_sent_by_name_is_a_registered_task_on_the_auctions_queue():
    app.loader.import_default_modules()  # the apps' tasks modules, as a worker loads them
    for name in jobs.NAMES:
        assert name in app.tasks, name
        assert queues.kind_of(name) == "auctions"


def test_every_registry_job_sent_by_name_is_a_registered_task_on_its_kinds_queue():
    app.loader.import_default_modules()
    kinds = {
        ledger_jobs.CHECKPOINT: "checkpoints",
        ledger_jobs.WEBHOOKS_DISPATCH: "webhooks",
        ledger_jobs.WEBHOOK_ENDPOINT_SEND: "webhooks",
        ledger_jobs.WITNESS_SUBMIT: "witnesses",
        ledger_jobs.MAIL_SEND: "default",
    }
    assert set(kinds) == set(ledger_jobs.NAMES)
    for name, kind in kinds.items():
        assert name in app.tasks, name
        assert queues.kind_of(name) == kind


def test_a_misspelt_name_would_be_caught():
    assert "auctions.tasks.auction_close" not in app.tasks


def test_every_listing_job_sent_by_name_is_a_registered_task_on_the_auctions_queue():
    from listings import jobs as listing_jobs

    app.loader.import_default_modules()
    for name in listing_jobs.NAMES:
        assert name in app.tasks, name
        assert queues.kind_of(name) == "auctions"
