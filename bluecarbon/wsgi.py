from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bluecarbon.settings")
django_application = get_wsgi_application()

# Full tiles of the log, once served, again from memory without Django (ledger/tile_cache.py).
from django.conf import settings  # noqa: E402

from ledger.metrics import REQUEST_LATENCY  # noqa: E402
from ledger.tile_cache import TileCache  # noqa: E402

application = TileCache(
    django_application,
    settings.LEDGER_TILE_CACHE_BYTES,
    observe=lambda seconds: REQUEST_LATENCY.observe(seconds, area="api", status="2xx"),
)

# A process's first write enqueues a checkpoint task, which would import the broker's
# transport (kombu, redis-py) inside that request: about half a second, once per worker. Do it
# at start-up instead. Resolving the class opens no connection.
from bluecarbon.celery import app as _celery_app  # noqa: E402

_celery_app.connection_for_write().get_transport_cls()
