"""The directory API as the tenant's own software meets it, over real HTTP: a client-credentials
token from /oauth/token/ (the client's own form-encoded bytes), then /api/v1/ and the change feed
on the tenant's host, with a change Entra provisions over SCIM in between."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from directory import services
from directory.models import Tenant, User
from oauth.services import api_client_create, secret_token_issue
from tests.live.support import EntraBackend, LiveApp, OAuthClient, token_body


def _api_client(tenant: Tenant, actor: services.Actor) -> OAuthClient:
    application, secret = api_client_create(tenant=tenant, actor=actor, name="Directory sync")
    return OAuthClient(application.client_id, secret)


def test_api_client_reads_its_directory_and_hears_a_scim_change(
    entra: EntraBackend,
    new_http: Callable[[], httpx.Client],
    live_app: LiveApp,
    tenant: Tenant,
    other_tenant: Tenant,
    manager: User,
    fabrikam_user: User,
    system_actor: services.Actor,
) -> None:
    """Client credentials give a token with the API scopes only; it lists Contoso's users, never
    Fabrikam's (their ids are 404, their host refuses it), and the feed carries a user that SCIM
    created after the first read, after the reader's cursor."""
    client = _api_client(tenant, system_actor)
    assert entra.token(client, grant_type="client_credentials", scope="scim").status_code == 400
    tokens = token_body(entra.token(client, "client_secret_post", grant_type="client_credentials"))
    assert set(tokens["scope"].split()) == {"directory:read", "events:read"}
    api = new_http()
    api.headers["Authorization"] = f"Bearer {tokens['access_token']}"
    base = f"{live_app.tenant_url(tenant)}/api/v1"

    users = api.get(f"{base}/users/").json()["results"]
    assert [u["user_name"] for u in users] == [manager.username]
    assert api.get(f"{base}/users/{fabrikam_user.scim_id}/").status_code == 404
    assert api.get(f"{live_app.tenant_url(other_tenant)}/api/v1/users/").status_code == 401
    cursor = api.get(f"{base}/events/").json()["next_cursor"]

    secret = secret_token_issue(tenant=tenant, actor=system_actor)[1]
    created = entra.scim(live_app.tenant_url(tenant), secret).create_user("new.hire@contoso.com")

    page = api.get(f"{base}/events/", params={"after": cursor}).json()
    assert [(e["type"], e["resource"]["id"]) for e in page["events"]] == [("user.created", created["id"])]
    found = api.get(f"{base}/users/", params={"userName": "NEW.HIRE@contoso.com"}).json()["results"]
    assert [u["id"] for u in found] == [created["id"]]
    assert not User.objects.filter(tenant=other_tenant, username="new.hire@contoso.com").exists()
