from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bluecarbon.settings")
application = get_wsgi_application()

# A process's first write enqueues a checkpoint task, which would import the broker's
# transport (kombu, redis-py) inside that request: about half a second, once per worker. Do it
# at start-up instead. Resolving the class opens no connection.
from bluecarbon.celery import app as _celery_app  # noqa: E402

_celery_app.connection_for_write().get_transport_cls()
