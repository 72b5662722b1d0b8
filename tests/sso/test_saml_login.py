"""SAML sign-in that should work: SP-initiated, IdP-initiated, metadata, the sign-in button."""

from __future__ import annotations

from directory.models import Tenant, User
from tests.sso.flows import signed_in_user_id, sp_sign_in
from tests.sso.support import FakeEntra, SpUrls


def test_sp_initiated_sign_in_lands_on_the_account_page(
    http, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, tenant: Tenant
) -> None:
    response = sp_sign_in(http, contoso_entra, contoso_sp, "Alice@Contoso.com")
    assert response.status_code == 302, response.content[:500]
    assert response["Location"] == "/account/"
    assert signed_in_user_id(http) == str(alice.pk)
    page = http.get("/account/", secure=True)
    assert page.status_code == 200
    assert b"alice@contoso.com" in page.content
