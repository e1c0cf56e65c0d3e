from __future__ import annotations

from django.apps import AppConfig


class AuctionsConfig(AppConfig):
    name = "auctions"
