"""The user's home after sign-in (/account/): profile, groups and recent sign-ins in the tenant's
branding; and the console dashboard's "Sign-ins (7 days)"."""

from __future__ import annotations

from directory import services
from directory.models import Tenant, User
from tests.clients import Client
from tests.sso.conftest import ALICE
from tests.sso.flows import sp_sign_in
from tests.sso.support import FakeEntra, SpUrls, tenant_http


def test_account_shows_profile_groups_and_recent_sign_ins(
    http: Client,
    contoso_entra: FakeEntra,
    contoso_sp: SpUrls,
    alice: User,
    tenant: Tenant,
    other_tenant: Tenant,
    frank: User,
    system_actor,
) -> None:
    services.tenant_update_branding(
        tenant=tenant, actor=system_actor, display_name="Contoso Ltd", logo_url="", primary_color="#123abc"
    )
    services.group_create(tenant=tenant, actor=system_actor, display_name="Sales", members=[alice])
    services.group_create(
        tenant=other_tenant, actor=system_actor, display_name="Fabrikam Secret", members=[frank]
    )
    sp_sign_in(http, contoso_entra, contoso_sp, ALICE)
    html = http.get("/account/", secure=True).content.decode()
    assert "Alice" in html and ALICE in html
    assert "Sales" in html and "Fabrikam Secret" not in html
    assert "Recent sign-ins" in html and "Microsoft (SAML)" in html and "from 127.0.0.1" in html
    assert "--brand: #123abc" in html and "Contoso Ltd" in html
    assert 'action="/saml2/logout/"' in html, "a SAML session signs out through single logout"


def test_recent_sign_ins_are_the_users_own(
    contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, manager: User, tenant: Tenant
) -> None:
    for _ in range(2):
        sp_sign_in(tenant_http(tenant), contoso_entra, contoso_sp, manager.username)
    http = tenant_http(tenant)
    sp_sign_in(http, contoso_entra, contoso_sp, ALICE)
    html = http.get("/account/", secure=True).content.decode()
    assert html.count("Microsoft (SAML)") == 1


def test_dashboard_counts_sign_ins_of_the_last_seven_days(
    contoso_entra: FakeEntra,
    fabrikam_entra: FakeEntra,
    contoso_sp: SpUrls,
    fabrikam_sp: SpUrls,
    alice: User,
    frank: User,
    manager: User,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    sp_sign_in(tenant_http(tenant), contoso_entra, contoso_sp, ALICE)
    sp_sign_in(tenant_http(other_tenant), fabrikam_entra, fabrikam_sp, frank.username)
    http = tenant_http(tenant)
    sp_sign_in(http, contoso_entra, contoso_sp, manager.username, next_path="/admin/")
    html = http.get("/admin/", secure=True).content.decode()
    assert "Sign-ins (7 days)" in html
    card = html.split("Sign-ins (7 days)")[1][:200]
    assert '<span class="sl-card-value">2</span>' in card, card
    assert "action=user.sign_in&amp;period=7d" in html
