"""Tenant-wide SSO enforcement: password sign-in refused to everyone but the named break-glass
managers, on the tenant's sign-in page and on the console's own login form; SSO keeps working and
managers reach the console through it."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt

from directory import services
from directory.exceptions import InvalidValue, TenantMismatch
from directory.models import Event, Tenant, User
from sso import services as sso_services
from sso.policy import password_sign_in_allowed
from tests.clients import Client
from tests.conftest import PASSWORD
from tests.sso.conftest import ALICE
from tests.sso.flows import sp_sign_in
from tests.sso.support import FakeEntra, SpUrls, tenant_http

REQUIRED = "Your organization requires single sign-on."


@pytest.fixture
def breakglass(tenant: Tenant, system_actor) -> User:
    return services.user_create(
        tenant=tenant,
        actor=system_actor,
        username="breakglass@contoso.com",
        role=User.Role.MANAGER,
        password=PASSWORD,
    )


@pytest.fixture
def enforced(tenant: Tenant, contoso_entra: FakeEntra, breakglass: User, system_actor) -> None:
    sso_services.sso_settings_update(
        tenant=tenant, actor=system_actor, enforce_sso=True, break_glass=[breakglass]
    )


def password(http: Client, username: str):
    return http.submit("/login/", {"username": username, "password": PASSWORD})


def test_password_sign_in_is_refused_with_a_clear_message(
    enforced: None, manager: User, tenant: Tenant
) -> None:
    http = tenant_http(tenant)
    response = password(http, manager.username)
    assert response.status_code == 200
    html = response.content.decode()
    assert REQUIRED in html and "Sign in with Microsoft" in html
    assert "_auth_user_id" not in http.session
    event = Event.objects.get(tenant=tenant, action="user.sign_in_refused")
    assert event.resource_id == str(manager.scim_id)
    assert event.changes == {"method": "password", "address": "127.0.0.1"}
    assert PASSWORD not in event.detail


def test_a_wrong_password_still_gets_the_generic_message(
    enforced: None, manager: User, tenant: Tenant
) -> None:
    response = tenant_http(tenant).submit("/login/", {"username": manager.username, "password": "wrong"})
    assert REQUIRED not in response.content.decode()
    assert "The username or password is not correct." in response.content.decode()


def test_break_glass_managers_may_still_use_a_password(
    enforced: None, breakglass: User, tenant: Tenant
) -> None:
    http = tenant_http(tenant)
    assert password(http, breakglass.username)["Location"] == "/account/"
    assert http.get("/admin/").status_code == 200


def test_the_console_login_form_obeys_enforcement_too(
    enforced: None, manager: User, breakglass: User, tenant: Tenant
) -> None:
    http = tenant_http(tenant)
    response = http.submit(
        "/admin/login/", {"username": manager.username, "password": PASSWORD, "next": "/admin/"}
    )
    assert response.status_code == 200 and "_auth_user_id" not in http.session
    other = tenant_http(tenant)
    ok = other.submit(
        "/admin/login/", {"username": breakglass.username, "password": PASSWORD, "next": "/admin/"}
    )
    assert ok.status_code == 302


def test_sso_still_signs_in_and_managers_reach_the_console(
    enforced: None, contoso_entra: FakeEntra, contoso_sp: SpUrls, manager: User, tenant: Tenant
) -> None:
    http = tenant_http(tenant)
    assert (
        sp_sign_in(http, contoso_entra, contoso_sp, manager.username, next_path="/admin/")["Location"]
        == "/admin/"
    )
    assert http.get("/admin/").status_code == 200


def test_the_page_tells_users_before_they_type(enforced: None, tenant: Tenant) -> None:
    html = tenant_http(tenant).get("/login/").content.decode()
    assert "The password form below is for emergency access accounts only." in html


def test_enforcement_leaves_other_tenants_alone(
    enforced: None, other_manager: User, other_tenant: Tenant
) -> None:
    assert password(tenant_http(other_tenant), other_manager.username).status_code == 302


def test_a_demoted_or_deactivated_break_glass_manager_loses_the_bypass(
    enforced: None, breakglass: User, tenant: Tenant, system_actor
) -> None:
    assert password_sign_in_allowed(breakglass)
    services.user_update(tenant=tenant, actor=system_actor, user=breakglass, role=User.Role.MEMBER)
    breakglass.refresh_from_db()
    assert not password_sign_in_allowed(breakglass)


def test_members_with_a_password_are_refused_and_not_locked_out_of_sso(
    enforced: None, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, tenant: Tenant, system_actor
) -> None:
    services.user_set_password(tenant=tenant, actor=system_actor, user=alice, password=PASSWORD)
    for _ in range(6):
        password(tenant_http(tenant), ALICE)
    assert AccessAttempt.objects.exists()  # password attempts are axes' business …
    assert (
        sp_sign_in(tenant_http(tenant), contoso_entra, contoso_sp, ALICE)["Location"] == "/account/"
    )  # … SSO is not


# ------------------------------------------------------------------------- the settings' own rules


def test_enforcement_needs_a_protocol_on(tenant: Tenant, system_actor) -> None:
    with pytest.raises(InvalidValue, match="can only be required once"):
        sso_services.sso_settings_update(tenant=tenant, actor=system_actor, enforce_sso=True)


def test_break_glass_accounts_are_active_managers_of_this_tenant(
    tenant: Tenant, contoso_entra: FakeEntra, alice: User, other_manager: User, system_actor
) -> None:
    with pytest.raises(InvalidValue, match="active managers"):
        sso_services.sso_settings_update(tenant=tenant, actor=system_actor, break_glass=[alice])
    with pytest.raises(TenantMismatch):
        sso_services.sso_settings_update(tenant=tenant, actor=system_actor, break_glass=[other_manager])


def test_settings_changes_are_logged_without_secrets(
    tenant: Tenant, breakglass: User, contoso_entra, system_actor
) -> None:
    sso_services.sso_settings_update(
        tenant=tenant,
        actor=system_actor,
        enforce_sso=True,
        break_glass=[breakglass],
        oidc_tenant_id="11111111-1111-4111-8111-111111111111",
        oidc_client_id="client",
        oidc_client_secret="s3cr3t-value",
    )
    event = Event.objects.filter(tenant=tenant, action="sso.settings_update").latest("id")
    assert event.changes["enforce_sso"] == [False, True]
    assert event.changes["break_glass"] == [[], [breakglass.username]]
    assert event.changes["oidc_client_secret"] == ["(set)", "(set)"]
    assert "s3cr3t-value" not in str(Event.objects.filter(tenant=tenant).values_list("changes", "detail"))
    again = Event.objects.count()
    sso_services.sso_settings_update(
        tenant=tenant, actor=system_actor, enforce_sso=True, break_glass=[breakglass]
    )
    assert Event.objects.count() == again


def test_the_platform_tenant_has_no_sso(platform_tenant: Tenant, system_actor) -> None:
    with pytest.raises(InvalidValue):
        sso_services.sso_settings_update(tenant=platform_tenant, actor=system_actor, allow_idp_initiated=True)
