"""The Celery queues, one per kind of work, and the router that sends each task to its own.

One queue for everything let any backlog hold up everything behind it: 165 webhook endpoints
made 40,500 delivery tasks, and an auction's close and the checkpoints waited behind them
(issue 14). Now each kind of work has its queue, so a backlog in one delays only that kind,
and operators run workers per queue (docs/operations.md):

============  ==========================  =============================================
kind          setting (environment)       what
============  ==========================  =============================================
default       ``CELERY_QUEUE``            the rest: verification runs, housekeeping
auctions      ``AUCTION_QUEUE``           the close -> open -> clear -> settle pipeline;
                                          listings' expiry
checkpoints   ``LEDGER_CHECKPOINT_QUEUE`` signing: only where the key and signer state are
witnesses     ``LEDGER_WITNESS_QUEUE``    submitting checkpoints to witnesses (slow peers)
webhooks      ``WEBHOOK_QUEUE``           webhook scheduling and delivery (slow receivers)
============  ==========================  =============================================

A queue setting set to the empty string sends that kind to the default queue. Each setting is
read when a task is sent, not when this module is imported, so a process may change them.

No Django import here at module level: the settings module reads the defaults.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

# kind: (the setting and environment variable naming its queue, its default name)
KINDS: dict[str, tuple[str, str]] = {
    "default": ("CELERY_QUEUE", "bluecarbon"),
    "auctions": ("AUCTION_QUEUE", "auctions"),
    "checkpoints": ("LEDGER_CHECKPOINT_QUEUE", "checkpoints"),
    "witnesses": ("LEDGER_WITNESS_QUEUE", "witnesses"),
    "webhooks": ("WEBHOOK_QUEUE", "webhooks"),
}

# Task name -> kind; a name ending in "." covers a module's tasks. Not listed: the default queue.
ROUTES: dict[str, str] = {
    "auctions.tasks.": "auctions",
    "listings.tasks.": "auctions",  # the market's timers: a listing's expiry
    "ledger.tasks.ledger_checkpoint_task": "checkpoints",
    "ledger.tasks.witness_submit_task": "witnesses",
    "ledger.tasks.webhooks_dispatch_task": "webhooks",
    "ledger.tasks.webhook_endpoint_send_task": "webhooks",
    "ledger.tasks.webhook_deliver_task": "webhooks",
}


def kind_of(task_name: str) -> str:
    for prefix, kind in ROUTES.items():
        if task_name == prefix or (prefix.endswith(".") and task_name.startswith(prefix)):
            return kind
    return "default"


def from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Each kind's queue name as the environment sets it (``""``: the default queue, whose
    own name is never empty)."""
    names = {kind: environ.get(variable, default) for kind, (variable, default) in KINDS.items()}
    names["default"] = names["default"] or KINDS["default"][1]
    return names


def names(kinds: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """The queues that work of these kinds goes to (a kind sent to the default queue: the
    default queue's name), each once: what a worker for them consumes (``-Q``)."""
    configured = from_environment(environ)
    found: list[str] = []
    for kind in kinds:
        name = configured[kind] or configured["default"]
        if name not in found:
            found.append(name)
    return found


def isolated(prefix: str) -> dict[str, str]:
    """Environment variables giving every kind a queue of its own under ``prefix`` (tests and
    benchmarks: one broker, queues nobody else reads)."""
    return {
        variable: prefix if kind == "default" else f"{prefix}-{kind}"
        for kind, (variable, _) in KINDS.items()
    }


def queue_for(kind: str) -> str:
    """The queue a task of this kind goes to now (the default queue's name for "")."""
    # Here, not at the top: the settings module imports this one (the module's docstring).
    from django.conf import settings

    from .celery import app

    name = "" if kind == "default" else str(getattr(settings, KINDS[kind][0], ""))
    return name or str(app.conf.task_default_queue)


def route(
    name: str, args: Any, kwargs: Any, options: Mapping[str, Any], task: Any = None, **kw: Any
) -> dict[str, str] | None:
    """Celery router (``task_routes``). A queue given to ``apply_async`` explicitly still wins
    (the heartbeats name theirs)."""
    kind = kind_of(name)
    if kind == "default":
        return None
    return {"queue": queue_for(kind)}


if __name__ == "__main__":
    # python -m bluecarbon.queues KIND...: the comma-separated -Q of a worker for those kinds,
    # as this environment names them (bin/demo; docs/operations.md).
    unknown = set(sys.argv[1:]) - set(KINDS)
    if unknown or not sys.argv[1:]:
        sys.exit(f"usage: python -m bluecarbon.queues KIND... (kinds: {', '.join(KINDS)})")
    print(",".join(names(sys.argv[1:], os.environ)))
