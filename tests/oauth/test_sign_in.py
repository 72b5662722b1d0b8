"""The tenant sign-in page, "My account" and sign-out (security.md checks 9, 12, 13)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings

from directory import services
from directory.models import Tenant, User
from tests.clients import Client, csrf_refused
from tests.conftest import PASSWORD
from tests.oauth.conftest import signed_in
from tests.oauth.support import OAuthClient, authorize_path, tenant_client


def sign_in(http: Client, username: str, password: str, next_path: str = "") -> Any:
    """Fill in and send the sign-in form as the browser does: its page first, then the POST."""
    return http.submit("/login/", {"username": username, "password": password, "next": next_path})


def test_sign_in_page_is_branded_and_hardened(tenant: Tenant, other_tenant: Tenant, system_actor) -> None:
    services.tenant_update_branding(
        tenant=tenant,
        actor=system_actor,
        display_name="Contoso <Corp>",
        logo_url='https://cdn.contoso.example/logo.png?a=1&b="2"',
        primary_color="#123abc",
    )
    page = tenant_client(tenant).get("/login/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Sign in to Contoso &lt;Corp&gt;" in html
    assert 'src="https://cdn.contoso.example/logo.png?a=1&amp;b=&quot;2&quot;"' in html
    assert "--brand: #123abc;" in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert page["X-Frame-Options"] == "DENY"
    nonce = re.search(r"'nonce-([^']+)'", page["Content-Security-Policy"]).group(1)
    assert f'<style nonce="{nonce}">' in html
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    other = tenant_client(other_tenant).get("/login/").content.decode()
    assert "Sign in to Fabrikam" in other and "Contoso" not in other and "#123abc" not in other


def test_a_colour_that_is_not_hex_never_reaches_css(tenant: Tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(primary_color="};}</x>")
    Tenant.objects.filter(pk=tenant.pk).update(logo_url="javascript:alert(1)")
    html = tenant_client(tenant).get("/login/").content.decode()
    assert "--brand: #2563eb;" in html
    assert "};}" not in html and "</x>" not in html
    assert "javascript:" not in html


def test_check9_sign_in_post_without_csrf_token_is_refused(manager: User, tenant: Tenant) -> None:
    http = tenant_client(tenant)
    with http.allow_csrf_refusal():
        response = http.post("/login/", {"username": manager.username, "password": PASSWORD, "next": ""})
    assert response.status_code == 403 and csrf_refused(response)
    assert "_auth_user_id" not in http.session


def test_check13_session_key_rotates_at_sign_in(manager: User, tenant: Tenant, other_tenant: Tenant) -> None:
    http = tenant_client(tenant)
    session = http.session
    session["pre_login"] = "x"
    session.save()
    before = http.cookies[settings.SESSION_COOKIE_NAME].value
    response = sign_in(http, manager.username, PASSWORD)
    assert response.status_code == 302
    after = http.cookies[settings.SESSION_COOKIE_NAME].value
    assert after != before
    assert http.session["_auth_user_id"] == str(manager.pk)


def test_manager_continues_to_next_members_go_to_their_account(
    entra: OAuthClient, manager: User, member: User, tenant: Tenant
) -> None:
    next_path = authorize_path(entra)
    assert sign_in(tenant_client(tenant), manager.username, PASSWORD, next_path)["Location"] == next_path
    assert sign_in(tenant_client(tenant), member.username, PASSWORD, next_path)["Location"] == "/account/"


@pytest.mark.parametrize(
    "next_path",
    [
        "https://evil.example/",
        "//evil.example/",
        "http://contoso.testserver/oauth/authorize/",
        "/\\evil.example",
    ],
)
def test_next_is_relative_only(manager: User, tenant: Tenant, next_path: str) -> None:
    assert sign_in(tenant_client(tenant), manager.username, PASSWORD, next_path)["Location"] == "/account/"


def test_users_of_another_tenant_cannot_sign_in_here(
    manager: User, other_manager: User, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = sign_in(tenant_client(tenant), other_manager.username, PASSWORD)
    assert response.status_code == 200
    assert b"The username or password is not correct." in response.content
    assert sign_in(tenant_client(other_tenant), other_manager.username, PASSWORD).status_code == 302


def test_service_principal_and_inactive_users_cannot_sign_in(
    manager: User, tenant: Tenant, system_actor: services.Actor
) -> None:
    services.user_deactivate(tenant=tenant, actor=system_actor, user=manager)
    assert sign_in(tenant_client(tenant), manager.username, PASSWORD).status_code == 200
    service_principal = User.objects.get(tenant=tenant, role=User.Role.SERVICE)
    assert sign_in(tenant_client(tenant), service_principal.username, "").status_code == 200


def test_check12_repeated_failures_lock_the_tenant_username_pair(
    manager: User, other_manager: User, member: User, tenant: Tenant, other_tenant: Tenant
) -> None:
    """After AXES_FAILURE_LIMIT failures the pair is locked, even with the right password and from
    another address (the lockout is per tenant and username by design, so rotating addresses does
    not help a guesser); other usernames and the same name at another tenant are unaffected."""
    http = tenant_client(tenant)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(http, manager.username, "wrong").status_code == 200
    locked = sign_in(http, manager.username, "wrong")
    assert locked.status_code == 429
    assert b"Sign-in paused" in locked.content
    assert "frame-ancestors 'none'" in locked["Content-Security-Policy"]
    assert sign_in(http, manager.username, PASSWORD).status_code == 429
    elsewhere = tenant_client(tenant, REMOTE_ADDR="10.1.2.3")
    assert sign_in(elsewhere, manager.username, PASSWORD).status_code == 429
    assert "_auth_user_id" not in elsewhere.session
    assert sign_in(tenant_client(tenant), member.username, PASSWORD).status_code == 302
    User.objects.filter(pk=other_manager.pk).update(username=manager.username)
    assert sign_in(tenant_client(other_tenant), manager.username, PASSWORD).status_code == 302
    assert AccessAttempt.objects.filter(username=f"contoso:{manager.username}").exists()
    assert not AccessAttempt.objects.filter(username__startswith="fabrikam:").exists()


def test_member_account_page_shows_profile_and_own_groups_only(
    member: User, tenant: Tenant, other_tenant: Tenant, system_actor: services.Actor
) -> None:
    mine = services.group_create(
        tenant=tenant, actor=system_actor, display_name="Engineering", members=[member]
    )
    services.group_create(tenant=tenant, actor=system_actor, display_name="Finance")
    outsider = services.user_create(tenant=other_tenant, actor=system_actor, username="x@fabrikam.com")
    services.group_create(
        tenant=other_tenant, actor=system_actor, display_name="Fabrikam All", members=[outsider]
    )
    page = signed_in(member).get("/account/")
    assert page.status_code == 200
    html = page.content.decode()
    assert member.username in html and mine.display_name in html
    assert "Finance" not in html and "Fabrikam All" not in html
    assert "Member" in html and "/admin/" not in html
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]


def test_account_needs_sign_in(tenant: Tenant) -> None:
    response = tenant_client(tenant).get("/account/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/account/")


def test_sign_out_ends_the_session(manager: User, tenant: Tenant) -> None:
    http = signed_in(manager)
    assert http.get("/logout/").status_code == 405
    response = http.submit("/account/", action="/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert "_auth_user_id" not in http.session
    assert http.get("/account/").status_code == 302
