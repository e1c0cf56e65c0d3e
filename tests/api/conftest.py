from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from ledger import services
from ledger.models import ApiKey, Organization


@pytest.fixture
def client_for(db) -> Callable[..., APIClient]:
    """An API client authenticated with a fresh key of ``org`` holding ``scopes``."""

    def make(org: Organization, *scopes: str) -> APIClient:
        _, secret = services.apikey_create(
            organization=org.pk, name="test key", scopes=scopes or ApiKey.Scope.values
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    return make
