"""Entra's Authorize button end to end over real HTTP: the admin's browser walks go-to-domain,
tenant sign-in and consent; Entra's backend exchanges the code at the Token URL, runs Test
Connection and provisions a user. Each client-authentication method Entra may use at the token
endpoint (RFC 6749 §2.3.1) has its own test, because each reaches the endpoint differently: the
CSRF regression answered both with a 403 page."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from directory import services
from directory.models import Tenant, User
from oauth.services import application_create
from tests.live.support import (
    ENTRA_REDIRECT,
    SHARED_USERNAME,
    Authorization,
    EntraBackend,
    LiveApp,
    OAuthClient,
    oauth_error,
    random_guid,
    token_body,
)


@pytest.mark.parametrize("auth", ["client_secret_basic", "client_secret_post"])
def test_authorize_then_exchange_the_code_and_provision_contoso_only(
    auth: str,
    connect_entra: Callable[[OAuthClient, User], Authorization],
    entra: EntraBackend,
    entra_client: OAuthClient,
    live_app: LiveApp,
    tenant: Tenant,
    other_tenant: Tenant,
    manager: User,
    fabrikam_user: User,
) -> None:
    """RFC 6749 §4.1.3: Entra posts the code form-encoded, authenticating with HTTP Basic or with
    client_id and client_secret in the body, and gets a Bearer access token, a refresh token and
    `Cache-Control: no-store`. The token provisions Contoso (the approving manager's tenant) and
    nothing of Fabrikam."""
    authorization = connect_entra(entra_client, manager)
    assert authorization.issuer == live_app.tenant_url(tenant)

    tokens = token_body(entra.exchange_code(entra_client, authorization.code, auth))
    assert tokens["refresh_token"]
    assert tokens["scope"] == "scim"

    scim = entra.scim(live_app.tenant_url(tenant), tokens["access_token"])
    scim.test_connection()
    created = scim.create_user(SHARED_USERNAME)
    fetched = scim.get(f"/Users/{created['id']}")
    assert fetched.status_code == 200 and fetched.json()["userName"] == SHARED_USERNAME
    assert str(User.objects.get(tenant=tenant, username=SHARED_USERNAME).scim_id) == created["id"]
    scim.assert_invisible(fabrikam_user.scim_id, fabrikam_user.username)
    entra.scim(live_app.tenant_url(other_tenant), tokens["access_token"]).assert_unauthorized()
    assert User.objects.filter(tenant=other_tenant, username=SHARED_USERNAME).get() == fabrikam_user


def test_a_code_redeemed_twice_is_refused_and_its_tokens_revoked(
    connect_entra: Callable[[OAuthClient, User], Authorization],
    entra: EntraBackend,
    entra_client: OAuthClient,
    live_app: LiveApp,
    tenant: Tenant,
    manager: User,
    fabrikam_user: User,
) -> None:
    """RFC 6749 §4.1.2: a code is single-use; a second redemption is `invalid_grant`, and the
    tokens issued for the first one are revoked, since the code may have been stolen."""
    authorization = connect_entra(entra_client, manager)
    tokens = token_body(entra.exchange_code(entra_client, authorization.code))
    scim = entra.scim(live_app.tenant_url(tenant), tokens["access_token"])
    scim.test_connection()
    scim.assert_invisible(fabrikam_user.scim_id, fabrikam_user.username)

    oauth_error(entra.exchange_code(entra_client, authorization.code), 400, "invalid_grant")
    scim.assert_unauthorized()


def test_a_code_is_bound_to_its_client_and_survives_refused_attempts(
    connect_entra: Callable[[OAuthClient, User], Authorization],
    entra: EntraBackend,
    entra_client: OAuthClient,
    system_actor: services.Actor,
    live_app: LiveApp,
    tenant: Tenant,
    manager: User,
    fabrikam_user: User,
) -> None:
    """RFC 6749 §4.1.3 and §5.2: a client that fails authentication gets 401 `invalid_client`,
    another client presenting the code gets `invalid_grant`, and neither attempt consumes the code,
    so Entra's own exchange still succeeds."""
    application, secret = application_create(
        tenant=None, actor=system_actor, name="Another gallery app", redirect_uris=[ENTRA_REDIRECT]
    )
    other_client = OAuthClient(application.client_id, secret)
    authorization = connect_entra(entra_client, manager)

    wrong_secret = OAuthClient(entra_client.client_id, random_guid())
    for auth in ("client_secret_basic", "client_secret_post"):
        oauth_error(entra.exchange_code(wrong_secret, authorization.code, auth), 401, "invalid_client")
    oauth_error(entra.exchange_code(other_client, authorization.code), 400, "invalid_grant")

    tokens = token_body(entra.exchange_code(entra_client, authorization.code, "client_secret_post"))
    scim = entra.scim(live_app.tenant_url(tenant), tokens["access_token"])
    scim.test_connection()
    scim.assert_invisible(fabrikam_user.scim_id, fabrikam_user.username)
