"""BearerOnlyPathMiddleware: SCIM requests skip the browser layers, everything else keeps them."""

from __future__ import annotations

import json

from directory.models import Tenant, User
from directory.tenancy import tenant_primary_host
from tests.clients import Client

SCIM_USERS = "/scim/v2/Users"


def test_scim_answers_skip_the_browser_layers_and_keep_the_security_headers(
    tenant: Tenant, scim_token: str, other_scim_token: str
) -> None:
    client = Client(HTTP_HOST=tenant_primary_host(tenant.slug))
    response = client.get(SCIM_USERS, HTTP_AUTHORIZATION=f"Bearer {scim_token}")

    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware, above the short path
    assert "X-Frame-Options" not in response  # clickjacking's layer, below it, did not run
    assert "Set-Cookie" not in response
    assert response["Content-Length"] == str(len(response.content))
    # The second tenant's token is still refused on the first tenant's host.
    refused = client.get(SCIM_USERS, HTTP_AUTHORIZATION=f"Bearer {other_scim_token}")
    assert refused.status_code == 401
    assert json.loads(refused.content)["status"] == "401"


def test_a_signed_in_session_does_not_authenticate_scim(manager: User, tenant: Tenant) -> None:
    client = Client(HTTP_HOST=tenant_primary_host(tenant.slug))
    client.force_login(manager, backend="directory.backends.TenantModelBackend")

    response = client.get(SCIM_USERS)

    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/scim+json")


def test_other_paths_keep_every_layer(tenant: Tenant, other_tenant: Tenant) -> None:
    for host_tenant in (tenant, other_tenant):
        response = Client(HTTP_HOST=tenant_primary_host(host_tenant.slug)).get("/admin/login/")
        assert response.status_code == 200
        assert response["X-Frame-Options"] == "DENY"
        assert "csrftoken" in response.cookies


def test_unknown_hosts_are_refused_before_the_short_path(tenant: Tenant, scim_token: str) -> None:
    response = Client(HTTP_HOST="nobody.example").get(SCIM_USERS, HTTP_AUTHORIZATION=f"Bearer {scim_token}")

    assert response.status_code == 404
    assert response.content == b"Unknown host."


def test_errors_under_the_short_path_are_scim_errors(tenant: Tenant, scim_token: str) -> None:
    client = Client(HTTP_HOST=tenant_primary_host(tenant.slug))

    response = client.get("/scim/v2/Nope", HTTP_AUTHORIZATION=f"Bearer {scim_token}")

    assert response.status_code == 404
    assert json.loads(response.content)["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
