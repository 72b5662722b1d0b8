"""The linking rule (sso.linking): an SSO identity signs in only the user SCIM provisioned in the
host's tenant, never a new one; deactivation and deletion through SCIM end that user's sessions
(security.md §1.4, checks 36–37)."""

from __future__ import annotations

import pytest

from directory import services
from directory.models import Tenant, User
from sso import linking
from sso import services as sso_services
from sso.models import SsoSettings
from tests.clients import Client
from tests.conftest import PASSWORD
from tests.sso.conftest import ALICE, ALICE_OID, FRANK
from tests.sso.flows import post_response, signed_in_user_id, sp_sign_in, start
from tests.sso.support import FakeEntra, SpUrls, tenant_http

# ----------------------------------------------------------------------------------- the rule itself


def test_upn_matches_user_name_case_insensitively_in_this_tenant_only(
    tenant: Tenant, other_tenant: Tenant, alice: User, system_actor
) -> None:
    twin = services.user_create(tenant=other_tenant, actor=system_actor, username=ALICE)
    assert linking.sso_user_for(tenant, upn="ALICE@contoso.COM", object_id="") == alice
    assert linking.sso_user_for(other_tenant, upn=ALICE, object_id="") == twin
    assert linking.sso_user_for(tenant, upn="alice", object_id="") is None
    assert linking.sso_user_for(tenant, upn="", object_id=ALICE_OID) is None


def test_email_is_never_a_key(tenant: Tenant, system_actor) -> None:
    services.user_create(
        tenant=tenant,
        actor=system_actor,
        username="a.smith@contoso.com",
        emails=[{"value": "alice@contoso.com", "primary": True}],
    )
    link = linking.sso_link(tenant, upn="alice@contoso.com", object_id="")
    assert link.user is None and link.refusal == linking.NOT_PROVISIONED


def test_object_id_matches_external_id_when_the_tenant_maps_it(
    tenant: Tenant, other_tenant: Tenant, alice: User, system_actor
) -> None:
    services.user_create(
        tenant=other_tenant, actor=system_actor, username="x@fabrikam.com", fields={"external_id": "oid-x"}
    )
    sso_services.sso_settings_update(tenant=tenant, actor=system_actor, match_object_id_to_external_id=True)
    assert linking.sso_user_for(tenant, upn="renamed@contoso.com", object_id=ALICE_OID) == alice
    # With the mapping on, the UPN alone no longer signs anyone in, and other tenants' ids are unknown.
    assert linking.sso_user_for(tenant, upn=ALICE, object_id="") is None
    assert linking.sso_user_for(tenant, upn=ALICE, object_id="oid-x") is None


def test_an_external_id_shared_by_two_users_signs_nobody_in(
    tenant: Tenant, alice: User, system_actor
) -> None:
    """SCIM allows a repeated externalId (RFC 7643); SSO must then refuse rather than pick one."""
    services.user_create(
        tenant=tenant, actor=system_actor, username="bob@contoso.com", fields={"external_id": ALICE_OID}
    )
    sso_services.sso_settings_update(tenant=tenant, actor=system_actor, match_object_id_to_external_id=True)
    link = linking.sso_link(tenant, upn=ALICE, object_id=ALICE_OID)
    assert link.user is None and link.refusal == linking.AMBIGUOUS


def test_deactivated_users_service_principals_and_the_platform_are_refused(
    tenant: Tenant, platform_tenant: Tenant, alice: User, system_actor
) -> None:
    services.user_deactivate(tenant=tenant, actor=system_actor, user=alice)
    link = linking.sso_link(tenant, upn=ALICE, object_id="")
    assert link.user == alice and link.refusal == linking.INACTIVE and not link.allowed
    assert linking.sso_user_for(tenant, upn=ALICE, object_id="") is None
    service_principal = User.objects.get(tenant=tenant, role=User.Role.SERVICE)
    assert linking.sso_user_for(tenant, upn=service_principal.username, object_id="") is None


def test_a_deactivated_tenant_signs_nobody_in(tenant: Tenant, alice: User, system_actor) -> None:
    services.tenant_deactivate(tenant=tenant, actor=system_actor)
    tenant.refresh_from_db()
    assert linking.sso_user_for(tenant, upn=ALICE, object_id="") is None


# ------------------------------------------------------------------------------------ end to end


def test_object_id_as_name_id(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, tenant: Tenant, system_actor
) -> None:
    """NameID policy "objectid": Entra's Unique User Identifier is user.objectid, matched to
    externalId; the UPN claim is only shown."""
    sso_services.sso_settings_update(
        tenant=tenant, actor=system_actor, name_id_policy=SsoSettings.NameIdPolicy.OBJECT_ID
    )
    response = sp_sign_in(http, contoso_entra, contoso_sp, ALICE_OID)
    assert response["Location"] == "/account/"
    assert signed_in_user_id(http) == str(alice.pk)


def test_object_id_claim_first_when_mapped(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, tenant: Tenant, system_actor
) -> None:
    """The UPN changed in Entra before SCIM caught up: the object id still finds Alice."""
    sso_services.sso_settings_update(tenant=tenant, actor=system_actor, match_object_id_to_external_id=True)
    response = sp_sign_in(http, contoso_entra, contoso_sp, "alice.new@contoso.com", object_id=ALICE_OID)
    assert response["Location"] == "/account/"
    assert signed_in_user_id(http) == str(alice.pk)


def test_an_unknown_user_gets_the_not_provisioned_page_and_no_account(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, tenant: Tenant, system_actor
) -> None:
    """No just-in-time accounts (SAML_CREATE_UNKNOWN_USER is never on)."""
    services.tenant_update_branding(
        tenant=tenant, actor=system_actor, display_name="Contoso Ltd", logo_url="", primary_color="#123abc"
    )
    users_before = User.objects.count()
    request_id = start(http, contoso_entra)
    xml = contoso_entra.response_xml(sp=contoso_sp, upn="newhire@contoso.com", in_response_to=request_id)
    response = post_response(http, xml)
    assert response.status_code == 403
    html = response.content.decode()
    assert "Your account has not been provisioned yet" in html
    assert "newhire@contoso.com" in html and "Contoso Ltd" in html and "--brand: #123abc" in html
    assert response["X-Frame-Options"] == "DENY"
    assert User.objects.count() == users_before
    assert signed_in_user_id(http) is None


def test_the_other_tenants_user_cannot_sign_in_here_even_with_a_twin_name(
    contoso_entra: FakeEntra,
    fabrikam_entra: FakeEntra,
    contoso_sp: SpUrls,
    fabrikam_sp: SpUrls,
    alice: User,
    frank: User,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    """Frank signs in at Fabrikam; the same assertion kind at Contoso finds nobody."""
    fabrikam = tenant_http(other_tenant)
    assert sp_sign_in(fabrikam, fabrikam_entra, fabrikam_sp, FRANK)["Location"] == "/account/"
    assert signed_in_user_id(fabrikam) == str(frank.pk)
    contoso = tenant_http(tenant)
    request_id = start(contoso, contoso_entra)
    refused = post_response(
        contoso, contoso_entra.response_xml(sp=contoso_sp, upn=FRANK, in_response_to=request_id)
    )
    assert refused.status_code == 403 and signed_in_user_id(contoso) is None
    # Fabrikam's session cookie is no key to Contoso's host.
    contoso.cookies = fabrikam.cookies
    assert contoso.get("/account/", secure=True).status_code == 302


# ------------------------------------------------------------------------ sessions end with SCIM


@pytest.fixture
def signed_in(http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User) -> Client:
    assert sp_sign_in(http, contoso_entra, contoso_sp, ALICE)["Location"] == "/account/"
    assert http.get("/account/", secure=True).status_code == 200
    return http


def test_scim_deactivation_ends_the_sso_session(
    signed_in: Client, alice: User, tenant: Tenant, system_actor
) -> None:
    services.user_deactivate(tenant=tenant, actor=system_actor, user=alice)
    response = signed_in.get("/account/", secure=True)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert signed_in.get("/admin/", secure=True).status_code == 302


def test_scim_deletion_ends_the_sso_session(
    signed_in: Client, alice: User, tenant: Tenant, system_actor
) -> None:
    services.user_delete(tenant=tenant, actor=system_actor, user=alice)
    response = signed_in.get("/account/", secure=True)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_reactivation_does_not_revive_the_old_session(
    signed_in: Client, alice: User, tenant: Tenant, system_actor
) -> None:
    """The session was flushed when it loaded as anonymous; coming back needs a new sign-in."""
    services.user_deactivate(tenant=tenant, actor=system_actor, user=alice)
    assert signed_in.get("/account/", secure=True).status_code == 302
    services.user_reactivate(tenant=tenant, actor=system_actor, user=alice)
    assert signed_in.get("/account/", secure=True).status_code == 302


def test_scim_deactivation_ends_password_sessions_too(manager: User, tenant: Tenant, system_actor) -> None:
    """The tenant backend drops inactive users like Django's ModelBackend.get_user does."""
    http = tenant_http(tenant)
    assert http.submit("/login/", {"username": manager.username, "password": PASSWORD}).status_code == 302
    assert http.get("/admin/").status_code == 200
    services.user_deactivate(tenant=tenant, actor=system_actor, user=manager)
    assert http.get("/admin/").status_code == 302
    assert http.get("/account/").status_code == 302
