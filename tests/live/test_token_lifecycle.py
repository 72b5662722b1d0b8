"""What Entra does with the tokens of an authorized connection, over real HTTP: it refreshes them
before the hour is up, and a client may revoke (RFC 7009) and introspect (RFC 7662) its own
tokens. Refresh, revoke and introspect are machine endpoints called without a browser session,
so a CSRF check there refuses every real client."""

from __future__ import annotations

from typing import Any

from directory.models import Tenant, User
from tests.live.support import EntraBackend, LiveApp, OAuthClient, oauth_error, token_body


def test_refresh_rotates_and_a_replayed_refresh_token_ends_the_chain(
    entra_tokens: dict[str, Any],
    entra: EntraBackend,
    entra_client: OAuthClient,
    live_app: LiveApp,
    tenant: Tenant,
    other_tenant: Tenant,
    fabrikam_user: User,
) -> None:
    """RFC 6749 §6 with rotation (RFC 9700 §4.14.2): a refresh returns a new access and refresh
    token; the old refresh token is refused with `invalid_grant`, and since a replay means the
    token leaked, the whole chain is revoked, including the new access token (README, Authorize)."""
    renewed = token_body(entra.refresh(entra_client, entra_tokens["refresh_token"]))
    assert renewed["refresh_token"] != entra_tokens["refresh_token"]
    assert renewed["access_token"] != entra_tokens["access_token"]

    scim = entra.scim(live_app.tenant_url(tenant), renewed["access_token"])
    scim.test_connection()
    scim.assert_invisible(fabrikam_user.scim_id, fabrikam_user.username)
    entra.scim(live_app.tenant_url(other_tenant), renewed["access_token"]).assert_unauthorized()

    oauth_error(entra.refresh(entra_client, entra_tokens["refresh_token"]), 400, "invalid_grant")
    scim.assert_unauthorized()
    oauth_error(entra.refresh(entra_client, renewed["refresh_token"]), 400, "invalid_grant")


def test_revoked_access_token_is_refused_by_scim_and_introspects_inactive(
    entra_tokens: dict[str, Any],
    entra: EntraBackend,
    entra_client: OAuthClient,
    live_app: LiveApp,
    tenant: Tenant,
    fabrikam_user: User,
) -> None:
    """RFC 7662 §2.2: introspection by the authenticated client says `active: true` for its live
    token and `active: false` once RFC 7009 §2.1 revocation (answered 200) took it away; SCIM
    then answers 401 with a Bearer challenge (RFC 6750 §3)."""
    access_token = entra_tokens["access_token"]
    scim = entra.scim(live_app.tenant_url(tenant), access_token)
    scim.test_connection()
    scim.assert_invisible(fabrikam_user.scim_id, fabrikam_user.username)
    described = entra.introspect(entra_client, access_token)
    assert described["active"] is True
    assert described["client_id"] == entra_client.client_id
    assert described["scope"] == "scim"

    revoked = entra.revoke(entra_client, access_token)
    assert revoked.status_code == 200, revoked.text

    scim.assert_unauthorized()
    assert entra.introspect(entra_client, access_token) == {"active": False}


def test_revoked_refresh_token_cannot_be_refreshed(
    entra_tokens: dict[str, Any],
    entra: EntraBackend,
    entra_client: OAuthClient,
    live_app: LiveApp,
    tenant: Tenant,
    fabrikam_user: User,
) -> None:
    """RFC 7009 §2.1: revoking a refresh token is answered 200 and the token is never honoured
    again; Entra then has to be authorized anew."""
    scim = entra.scim(live_app.tenant_url(tenant), entra_tokens["access_token"])
    scim.assert_invisible(fabrikam_user.scim_id, fabrikam_user.username)
    revoked = entra.revoke(entra_client, entra_tokens["refresh_token"], hint="refresh_token")
    assert revoked.status_code == 200, revoked.text
    oauth_error(entra.refresh(entra_client, entra_tokens["refresh_token"]), 400, "invalid_grant")
