"""Who may call /api/v1/: a client-credentials token of one tenant's API client, with the scope the
endpoint needs. SCIM credentials, tokens of disabled clients or tenants, revoked or expired tokens
and other tenants' tokens on a tenant's host are all 401; a missing scope is 403."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken

from directory import services
from directory.models import Tenant, User
from oauth.models import Application
from oauth.services import api_client_create, application_create, application_disable, secret_token_issue
from tests.api.conftest import ApiClient, token_for
from tests.api.support import ACTOR, group, user
from tests.clients import Client
from tests.oauth.support import (
    ENTRA_REDIRECT,
    OAuthClient,
    basic,
    code_from,
    consent,
    exchange,
    tenant_client,
)

pytestmark = pytest.mark.django_db

DIRECTORY_ENDPOINTS = ["/api/v1/users/", "/api/v1/groups/"]
ALL_ENDPOINTS = [*DIRECTORY_ENDPOINTS, "/api/v1/events/"]
INVALID = "The bearer token is missing, invalid, expired or revoked."


def get(path: str, token: str | None, host: str = "testserver", **params: Any) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return Client(HTTP_HOST=host).get(path, params, **headers)


def detail_paths(tenant: Tenant) -> list[str]:
    """Every endpoint of the API, with ids of `tenant`'s own user and group."""
    someone = user(tenant, f"someone@{tenant.slug}.com")
    staff = group(tenant, "Staff", [someone])
    return [
        *ALL_ENDPOINTS,
        f"/api/v1/users/{someone.scim_id}/",
        f"/api/v1/users/{someone.scim_id}/groups/",
        f"/api/v1/groups/{staff.scim_id}/",
        f"/api/v1/groups/{staff.scim_id}/members/",
    ]


def client_with_secret(
    tenant: Tenant, scopes: tuple[str, ...] = ("directory:read", "events:read")
) -> OAuthClient:
    application, secret = api_client_create(tenant=tenant, actor=ACTOR, name="Sync", scopes=scopes)
    return OAuthClient(application, secret)


def token_request(client: OAuthClient, **data: str) -> Any:
    return Client().post(
        "/oauth/token/",
        {"grant_type": "client_credentials", **data},
        HTTP_AUTHORIZATION=basic(client.client_id, client.secret),
    )


# ---------------------------------------------------------------------------------------- no token


def test_no_token_is_401_with_a_bearer_challenge_everywhere(tenant: Tenant, other_tenant: Tenant) -> None:
    for path in detail_paths(tenant):
        response = get(path, None)
        assert response.status_code == 401, path
        assert response["WWW-Authenticate"] == 'Bearer realm="api"', path
        assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize("header", ["Bearer", "Bearer nonsense", "Basic dXNlcjpwYXNz", "bearer  "])
def test_a_malformed_or_unknown_token_is_401(tenant: Tenant, other_tenant: Tenant, header: str) -> None:
    response = Client().get("/api/v1/users/", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Bearer realm="api"')


# ---------------------------------------------------------------------------------- SCIM credentials


def test_a_scim_secret_token_is_401(tenant: Tenant, other_tenant: Tenant) -> None:
    _, raw = secret_token_issue(tenant=tenant, actor=ACTOR)

    for path in detail_paths(tenant):
        response = get(path, raw)
        assert response.status_code == 401, path
        assert response["WWW-Authenticate"].startswith('Bearer realm="api"')


def test_a_scim_client_credentials_token_is_401(tenant: Tenant, other_tenant: Tenant) -> None:
    application, secret = application_create(
        tenant=tenant, actor=ACTOR, name="Entra", grant_type=Application.GRANT_CLIENT_CREDENTIALS
    )
    response = token_request(OAuthClient(application, secret))
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "scim"
    token = response.json()["access_token"]
    assert Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200

    for path in detail_paths(tenant):
        assert get(path, token).status_code == 401, path


def test_an_entra_authorization_code_token_is_401(
    tenant: Tenant, other_tenant: Tenant, manager: User
) -> None:
    """The Authorize button's token acts for the service principal with scope `scim`: SCIM only."""
    application, secret = application_create(
        tenant=None, actor=ACTOR, name="Microsoft Entra ID", redirect_uris=[ENTRA_REDIRECT]
    )
    entra = OAuthClient(application, secret)
    http = tenant_client(tenant)
    http.force_login(manager, backend="directory.backends.TenantModelBackend")
    response = exchange(Client(), entra, code_from(consent(http, entra)))
    assert response.status_code == 200, response.content
    token = response.json()["access_token"]
    assert Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200

    for path in detail_paths(tenant):
        assert get(path, token).status_code == 401, path
        assert get(path, token, host="contoso.testserver").status_code == 401, path


def test_an_api_token_is_401_at_scim(api: ApiClient, other_tenant: Tenant) -> None:
    response = Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {api.token}")

    assert response.status_code == 401


# ------------------------------------------------------------------------------------------- scopes


def test_directory_read_alone_reads_the_directory_and_not_the_feed(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    token = token_for(tenant, scopes=("directory:read",))
    paths = detail_paths(tenant)

    for path in paths[:2] + paths[3:]:
        assert get(path, token).status_code == 200, path
    response = get("/api/v1/events/", token)
    assert response.status_code == 403
    assert "insufficient_scope" in response.json()["detail"]


def test_events_read_alone_reads_the_feed_and_not_the_directory(tenant: Tenant, other_tenant: Tenant) -> None:
    token = token_for(tenant, scopes=("events:read",))
    paths = detail_paths(tenant)

    assert get("/api/v1/events/", token).status_code == 200
    for path in paths:
        if path == "/api/v1/events/":
            continue
        response = get(path, token)
        assert response.status_code == 403, path
        assert "insufficient_scope" in response.json()["detail"]


def test_a_token_asked_for_one_scope_holds_only_that_scope(tenant: Tenant, other_tenant: Tenant) -> None:
    client = client_with_secret(tenant)

    response = token_request(client, scope="events:read")

    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "events:read"
    token = response.json()["access_token"]
    assert get("/api/v1/events/", token).status_code == 200
    assert get("/api/v1/users/", token).status_code == 403


def test_a_token_without_a_scope_gets_all_the_clients_scopes(tenant: Tenant, other_tenant: Tenant) -> None:
    response = token_request(client_with_secret(tenant))

    assert response.status_code == 200, response.content
    assert set(response.json()["scope"].split()) == {"directory:read", "events:read"}


def test_an_api_client_asking_for_scim_is_invalid_scope(tenant: Tenant, other_tenant: Tenant) -> None:
    client = client_with_secret(tenant)

    for scope in ("scim", "directory:read scim", "directory:write"):
        response = token_request(client, scope=scope)
        assert response.status_code == 400, (scope, response.content)
        assert response.json()["error"] == "invalid_scope", scope
    assert not AccessToken.objects.filter(application=client.application).exists()


def test_a_client_holding_one_api_scope_cannot_ask_for_the_other(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    client = client_with_secret(tenant, scopes=("directory:read",))

    response = token_request(client, scope="events:read")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_a_scim_client_asking_for_directory_read_is_invalid_scope(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    application, secret = application_create(
        tenant=tenant, actor=ACTOR, name="Entra", grant_type=Application.GRANT_CLIENT_CREDENTIALS
    )

    for scope in ("directory:read", "events:read", "scim directory:read"):
        response = token_request(OAuthClient(application, secret), scope=scope)
        assert response.status_code == 400, (scope, response.content)
        assert response.json()["error"] == "invalid_scope", scope
    assert not AccessToken.objects.filter(application=application).exists()


# ----------------------------------------------------------------------- revoked, disabled, expired


def test_a_token_revoked_by_its_client_is_401(tenant: Tenant, other_tenant: Tenant) -> None:
    client = client_with_secret(tenant)
    token = token_request(client).json()["access_token"]
    assert get("/api/v1/users/", token).status_code == 200

    revoked = Client().post(
        "/oauth/revoke_token/", {"token": token}, HTTP_AUTHORIZATION=basic(client.client_id, client.secret)
    )

    assert revoked.status_code == 200, revoked.content
    for path in ALL_ENDPOINTS:
        assert get(path, token).status_code == 401, path


def test_a_disabled_api_client_is_401_and_gets_no_new_token(tenant: Tenant, other_tenant: Tenant) -> None:
    client = client_with_secret(tenant)
    token = token_request(client).json()["access_token"]
    other = token_for(other_tenant)

    application_disable(tenant=tenant, actor=ACTOR, application=client.application)

    for path in ALL_ENDPOINTS:
        assert get(path, token).status_code == 401, path
    assert token_request(client).status_code in (400, 401)
    assert get("/api/v1/users/", other).status_code == 200


def test_a_disabled_application_whose_token_survived_is_401(tenant: Tenant, other_tenant: Tenant) -> None:
    """Disabling deletes the tokens; were one left (a restore, a race), `is_usable` still refuses it."""
    client = client_with_secret(tenant)
    token = token_request(client).json()["access_token"]

    Application.objects.filter(pk=client.application.pk).update(disabled=True)

    assert get("/api/v1/users/", token).status_code == 401


def test_an_expired_token_is_401(tenant: Tenant, other_tenant: Tenant) -> None:
    token = token_for(tenant)
    AccessToken.objects.filter(application__tenant=tenant).update(
        expires=timezone.now() - timedelta(seconds=1)
    )

    response = get("/api/v1/users/", token)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Bearer realm="api"')


def test_a_disabled_tenant_is_401_and_gets_no_new_token(tenant: Tenant, other_tenant: Tenant) -> None:
    client = client_with_secret(tenant)
    token = token_request(client).json()["access_token"]
    other = token_for(other_tenant)

    services.tenant_deactivate(tenant=tenant, actor=ACTOR)

    for path in ALL_ENDPOINTS:
        assert get(path, token).status_code == 401, path
    assert token_request(client).status_code in (400, 401)
    assert get("/api/v1/users/", other).status_code == 200


# ------------------------------------------------------------------------------------------- hosts


def test_on_a_tenant_host_only_that_tenants_token_is_accepted(tenant: Tenant, other_tenant: Tenant) -> None:
    """The tenant comes from the credential; a tenant's own host refuses any other tenant's."""
    contoso, fabrikam = token_for(tenant), token_for(other_tenant)
    paths = detail_paths(tenant)

    for path in ALL_ENDPOINTS:
        response = get(path, fabrikam, host="contoso.testserver")
        assert response.status_code == 401, path
        assert response.json() == {"detail": INVALID}
        assert get(path, contoso, host="contoso.testserver").status_code == 200, path
        assert get(path, fabrikam, host="fabrikam.testserver").status_code == 200, path
    for path in paths[3:]:
        assert get(path, fabrikam, host="contoso.testserver").status_code == 401, path
        assert get(path, contoso, host="contoso.testserver").status_code == 200, path


def test_the_root_host_serves_every_tenant_by_its_token(tenant: Tenant, other_tenant: Tenant) -> None:
    ada = user(tenant, "ada@contoso.com")
    eve = user(other_tenant, "eve@fabrikam.com")

    contoso = get("/api/v1/users/", token_for(tenant)).json()["results"]
    fabrikam = get("/api/v1/users/", token_for(other_tenant)).json()["results"]

    assert [u["id"] for u in contoso] == [str(ada.scim_id)]
    assert [u["id"] for u in fabrikam] == [str(eve.scim_id)]


def test_using_a_token_marks_the_client_used(tenant: Tenant, other_tenant: Tenant) -> None:
    client = client_with_secret(tenant)
    token = token_request(client).json()["access_token"]
    Application.objects.filter(pk=client.application.pk).update(last_used=None)

    assert get("/api/v1/users/", token).status_code == 200

    assert Application.objects.get(pk=client.application.pk).last_used is not None
