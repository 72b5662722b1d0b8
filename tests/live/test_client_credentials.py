"""The two credentials Entra uses without a browser, over real HTTP: the client credentials grant
of a tenant-bound application (what Entra's gallery now requires) and a long-lived secret token
(non-gallery apps). Both act for their tenant's provisioning service principal, whatever host or
id the request names."""

from __future__ import annotations

import pytest

from directory import services
from directory.models import Tenant, User
from oauth.services import secret_token_issue
from tests.live.support import (
    SHARED_USERNAME,
    EntraBackend,
    LiveApp,
    OAuthClient,
    oauth_error,
    random_guid,
    token_body,
)


@pytest.mark.parametrize("auth", ["client_secret_basic", "client_secret_post"])
def test_client_credentials_token_provisions_its_own_tenant_only(
    auth: str,
    entra: EntraBackend,
    contoso_cc: OAuthClient,
    live_app: LiveApp,
    tenant: Tenant,
    other_tenant: Tenant,
    manager: User,
    fabrikam_user: User,
) -> None:
    """RFC 6749 §4.4.2–4.4.3: a form-encoded `grant_type=client_credentials` with the client
    authenticated either way Entra may send it gets a Bearer token and no refresh token. The token
    lists Contoso's users and creates in Contoso; Fabrikam's user stays out of reach."""
    tokens = token_body(entra.token(contoso_cc, auth, grant_type="client_credentials", scope="scim"))
    assert "refresh_token" not in tokens

    scim = entra.scim(live_app.tenant_url(tenant), tokens["access_token"])
    scim.test_connection()
    assert str(manager.scim_id) in scim.user_ids()
    created = scim.create_user(SHARED_USERNAME)
    assert str(User.objects.get(tenant=tenant, username=SHARED_USERNAME).scim_id) == created["id"]
    assert {str(manager.scim_id), created["id"]} <= scim.user_ids()
    assert set(
        User.objects.filter(scim_id__in=scim.user_ids()).values_list("tenant_id", flat=True)
    ) == {tenant.pk}
    scim.assert_invisible(fabrikam_user.scim_id, fabrikam_user.username)
    entra.scim(live_app.tenant_url(other_tenant), tokens["access_token"]).assert_unauthorized()


def test_client_credentials_need_the_right_secret(
    entra: EntraBackend,
    contoso_cc: OAuthClient,
    live_app: LiveApp,
    tenant: Tenant,
    fabrikam_user: User,
) -> None:
    """RFC 6749 §5.2: a wrong secret is 401 `invalid_client`, by either method, and gets no token;
    the application's real secret works right after."""
    wrong = OAuthClient(contoso_cc.client_id, random_guid())
    for auth in ("client_secret_basic", "client_secret_post"):
        oauth_error(entra.token(wrong, auth, grant_type="client_credentials"), 401, "invalid_client")
    tokens = token_body(entra.token(contoso_cc, grant_type="client_credentials"))
    scim = entra.scim(live_app.tenant_url(tenant), tokens["access_token"])
    scim.assert_invisible(fabrikam_user.scim_id, fabrikam_user.username)


def test_secret_token_provisions_its_own_tenant_only(
    entra: EntraBackend,
    system_actor: services.Actor,
    live_app: LiveApp,
    tenant: Tenant,
    other_tenant: Tenant,
    fabrikam_user: User,
) -> None:
    """Entra's "Secret Token" field (README, Secret token): the raw token minted by
    oauth.services.secret_token_issue is the bearer credential as-is. It passes Test Connection,
    provisions Contoso, and is nothing on Fabrikam's host."""
    _token, raw = secret_token_issue(tenant=tenant, actor=system_actor, name="Entra (live test)")

    scim = entra.scim(live_app.tenant_url(tenant), raw)
    scim.test_connection()
    created = scim.create_user(SHARED_USERNAME)
    assert created["id"] in scim.user_ids(filter=f'userName eq "{SHARED_USERNAME}"')
    scim.assert_invisible(fabrikam_user.scim_id, fabrikam_user.username)
    entra.scim(live_app.tenant_url(other_tenant), raw).assert_unauthorized()
    assert User.objects.filter(tenant=other_tenant, username=SHARED_USERNAME).get() == fabrikam_user
