"""Work the registry sends to its workers, by task name.

The tasks (``ledger/tasks.py``) call the services, the signer, the witnesses, the webhook
scheduler and the mail outbox; these enqueue work for the tasks. Sending by name (``send_task``)
instead of through the task objects keeps that one-way: nothing that enqueues imports ``tasks``
(they imported each other before). Routing is by name too (``bluecarbon/queues.py``), so each
kind of work still goes to its own queue; ``tests/test_jobs.py`` fails if a name here is not a
registered task.
"""

from __future__ import annotations

from celery import current_app

CHECKPOINT = "ledger.tasks.ledger_checkpoint_task"
WEBHOOKS_DISPATCH = "ledger.tasks.webhooks_dispatch_task"
WEBHOOK_ENDPOINT_SEND = "ledger.tasks.webhook_endpoint_send_task"
WITNESS_SUBMIT = "ledger.tasks.witness_submit_task"
MAIL_SEND = "ledger.tasks.mail_send_task"
NAMES = (CHECKPOINT, WEBHOOKS_DISPATCH, WEBHOOK_ENDPOINT_SEND, WITNESS_SUBMIT, MAIL_SEND)


def send(
    name: str, *args: object, countdown: float | None = None, queue: str | None = None
) -> None:
    """Send the task now (in ``countdown`` seconds, if given; to ``queue`` instead of the one
    its kind is routed to, if given)."""
    if queue:
        current_app.send_task(name, args=args, countdown=countdown, queue=queue)
    else:  # routed by its name (a queue of None is not passed: no option overrides the route)
        current_app.send_task(name, args=args, countdown=countdown)
