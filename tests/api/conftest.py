"""Fixtures for /api/v1/: a tenant's API client, its client-credentials token fetched from
/oauth/token/ over the test client (CSRF enforced), and the same for the second tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from directory import services
from directory.models import Tenant
from oauth.services import api_client_create
from tests.clients import Client
from tests.oauth.support import basic


@dataclass
class ApiClient:
    """An HTTP client holding a bearer token of one tenant's API client."""

    tenant: Tenant
    token: str
    host: str = "testserver"

    def get(self, path: str, **params: Any) -> Any:
        http = Client(HTTP_HOST=self.host)
        return http.get(path, params, HTTP_AUTHORIZATION=f"Bearer {self.token}")


def token_for(tenant: Tenant, scopes: tuple[str, ...] = ("directory:read", "events:read")) -> str:
    application, secret = api_client_create(
        tenant=tenant, actor=services.Actor.system("tests"), name="Directory sync", scopes=scopes
    )
    response = Client().post(
        "/oauth/token/",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(application.client_id, secret),
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


@pytest.fixture
def api(tenant: Tenant) -> ApiClient:
    return ApiClient(tenant=tenant, token=token_for(tenant))


@pytest.fixture
def other_api(other_tenant: Tenant) -> ApiClient:
    return ApiClient(tenant=other_tenant, token=token_for(other_tenant))
