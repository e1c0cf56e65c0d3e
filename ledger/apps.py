from __future__ import annotations

from typing import Any

from celery.signals import worker_init
from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from bluecarbon.queues import queue_for


def _checkpoint_key_present(sender: Any = None, **kwargs: Any) -> None:
    """In production, a Celery worker that takes the checkpoint queue
    (``LEDGER_CHECKPOINT_QUEUE``, where ``ledger_checkpoint_task`` goes) refuses to start
    without the checkpoint key, rather than at the first checkpoint. A worker of other queues
    only (auctions, witnesses, webhooks) does not sign. ``SystemExit``: Celery logs and ignores
    any ``Exception`` a signal handler raises."""
    if not settings.PRODUCTION or settings.LEDGER_SIGNING_KEY_FILE.exists():
        return
    queue = queue_for("checkpoints")
    if queue not in sender.app.amqp.queues.consume_from:
        return
    raise SystemExit(
        f"LEDGER_SIGNING_KEY_FILE {settings.LEDGER_SIGNING_KEY_FILE} does not exist: this "
        f"worker takes the queue {queue!r}, where checkpoints are signed"
    )


class LedgerConfig(AppConfig):
    name = "ledger"
    verbose_name = "Registry and ledger"

    def ready(self) -> None:
        # Registers the OpenAPI extensions. Here, not at the top: it imports the models, which
        # Django loads after this module.
        from .apis import schema  # noqa: F401

        # The checkpoint key lives only where checkpoints are signed: a web process never reads
        # it (receipts have a key of their own), so only a worker refuses to start without it.
        worker_init.connect(_checkpoint_key_present, weak=False, dispatch_uid=__name__)
        if settings.PRODUCTION and not settings.LEDGER_ENTRY_KEY_FILE.exists():
            raise ImproperlyConfigured(
                f"LEDGER_ENTRY_KEY_FILE {settings.LEDGER_ENTRY_KEY_FILE} does not exist "
                "(create it with `manage.py ledger_entry_key`)"
            )
