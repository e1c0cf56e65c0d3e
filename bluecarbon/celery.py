from __future__ import annotations

import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

# "filesystem://" (the embedded default) is kombu's file-system transport with whole-message
# writes (bluecarbon/broker.py).
TRANSPORT_ALIASES["filesystem"] = "bluecarbon.broker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bluecarbon.settings")

app = Celery("bluecarbon")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
