"""The tenant's authorization endpoint and consent (security.md checks 5–11, 21)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.models import get_grant_model
from oauth2_provider.oauth2_backends import OAuthLibCore

from directory import services
from directory.models import Event, Tenant, User
from oauth.models import Consent
from tests.clients import Client, csrf_refused
from tests.oauth.conftest import signed_in
from tests.oauth.support import (
    ENTRA_REDIRECT,
    STATE,
    OAuthClient,
    authorize_path,
    code_from,
    consent,
    hidden_inputs,
    query,
    tenant_client,
)

Grant = get_grant_model()


def test_anonymous_browser_is_sent_to_the_tenant_sign_in_with_the_request(
    entra: OAuthClient, tenant: Tenant
) -> None:
    response = tenant_client(tenant).get(authorize_path(entra))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/oauth/authorize/%3F")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        ENTRA_REDIRECT + "/",
        ENTRA_REDIRECT + "?x=1",
        ENTRA_REDIRECT.replace("https:", "http:"),
        "https://evil@portal.azure.com/TokenAuthorize",
        "https://portal.azure.com.evil.example/TokenAuthorize",
        "https://portal.azure.corn/TokenAuthorize",
        ENTRA_REDIRECT + "#frag",
        "https://PORTAL.azure.com/tokenauthorize",
    ],
)
def test_check5_redirect_uri_must_match_exactly(
    entra: OAuthClient, manager_http: Client, tenant: Tenant, redirect_uri: str
) -> None:
    for http in (manager_http, tenant_client(tenant)):
        response = http.get(authorize_path(entra, redirect_uri=redirect_uri))
        assert response.status_code == 400
        assert "Location" not in response
    assert not Grant.objects.exists()


def test_check6_unknown_client_on_the_tenant_host_is_an_error_page(
    entra: OAuthClient, manager_http: Client, tenant: Tenant
) -> None:
    path = authorize_path(entra).replace(entra.client_id, "unknown-client")
    for http in (manager_http, tenant_client(tenant)):
        response = http.get(path)
        assert response.status_code == 400
        assert "Location" not in response


def test_check7_a_member_who_is_not_a_manager_gets_no_code(
    entra: OAuthClient, member: User, tenant: Tenant, other_tenant: Tenant
) -> None:
    http = signed_in(member)
    page = http.get(authorize_path(entra))
    assert page.status_code == 403
    assert b"You can't authorize this application" in page.content
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    forged = {
        "client_id": entra.client_id,
        "redirect_uri": ENTRA_REDIRECT,
        "response_type": "code",
        "scope": "scim",
        "state": STATE,
        "allow": "Authorize",
    }
    # Sent with the token the member's own account page gives, so the 403 is the manager check.
    response = http.csrf_post("/oauth/authorize/", forged, form_path="/account/")
    assert response.status_code == 403 and not csrf_refused(response)
    assert not Grant.objects.exists()
    assert Event.objects.filter(tenant=tenant, action="credential.authorize", result="failure").count() == 2
    assert not Event.objects.filter(tenant=other_tenant, action="credential.authorize").exists()


def test_check8_another_tenants_manager_session_does_not_work_here(
    entra: OAuthClient, other_manager: User, tenant: Tenant, other_tenant: Tenant
) -> None:
    """Cookies are host-only; even a session carried over by force is dropped on the wrong host."""
    http = tenant_client(tenant)
    http.force_login(other_manager, backend="directory.backends.TenantModelBackend")
    response = http.get(authorize_path(entra))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert not Grant.objects.exists()


def test_a_tenant_bound_application_is_only_for_its_own_managers(
    contoso_app: OAuthClient, fabrikam_app: OAuthClient, manager_http: Client, other_manager_http: Client
) -> None:
    response = manager_http.get(authorize_path(fabrikam_app))
    assert response.status_code == 403
    assert other_manager_http.get(authorize_path(contoso_app)).status_code == 403
    # Tampering with the hidden client_id of a legitimate consent form changes nothing.
    page = manager_http.get(authorize_path(contoso_app))
    fields = {
        **hidden_inputs(page.content.decode()),
        "client_id": fabrikam_app.client_id,
        "allow": "Authorize",
    }
    assert manager_http.post("/oauth/authorize/", fields).status_code == 403
    assert not Grant.objects.exists()
    assert code_from(consent(manager_http, contoso_app))
    assert code_from(consent(other_manager_http, fabrikam_app))


def _core_authorize(host: str, user: User, client: OAuthClient, *, allow: bool = True) -> str:
    """Drive DOT's core directly, as the consent POST (or skip_authorization) would, with no view
    check in between: what the validator alone permits."""
    credentials = {
        "client_id": client.client_id,
        "redirect_uri": ENTRA_REDIRECT,
        "response_type": "code",
        "state": STATE,
    }
    request = RequestFactory().post("/oauth/authorize/", {**credentials, "scope": "scim"}, HTTP_HOST=host)
    request.user = user
    uri, _headers, _body, _status = OAuthLibCore().create_authorization_response(
        request, scopes=["scim"], credentials=credentials, allow=allow
    )
    return uri


def test_validator_refuses_codes_for_other_tenants_without_any_view(
    entra: OAuthClient,
    contoso_app: OAuthClient,
    fabrikam_app: OAuthClient,
    manager: User,
    member: User,
    other_manager: User,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    refusals = [
        ("contoso.testserver", manager, fabrikam_app),  # tenant-bound app of another tenant
        ("fabrikam.testserver", manager, entra),  # manager on another tenant's host
        ("contoso.testserver", member, entra),  # not a manager
        ("testserver", manager, entra),  # platform host
    ]
    for host, user, client in refusals:
        with pytest.raises(OAuthToolkitError) as raised:
            _core_authorize(host, user, client)
        assert raised.value.oauthlib_error.error == "access_denied"
    assert not Grant.objects.exists()
    assert "code=" in _core_authorize("contoso.testserver", manager, entra)
    assert "code=" in _core_authorize("fabrikam.testserver", other_manager, fabrikam_app)


def test_skip_authorization_still_needs_a_manager(
    entra: OAuthClient, manager_http: Client, member: User, tenant: Tenant
) -> None:
    entra.application.skip_authorization = True
    entra.application.save()
    assert signed_in(member).get(authorize_path(entra)).status_code == 403
    response = manager_http.get(authorize_path(entra))
    assert response.status_code == 302 and "code=" in response["Location"]


def test_a_deactivated_manager_or_inactive_tenant_gets_no_code(
    entra: OAuthClient, manager: User, tenant: Tenant, system_actor: services.Actor
) -> None:
    http = signed_in(manager)
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)
    assert http.get(authorize_path(entra)).status_code in (302, 403)
    Tenant.objects.filter(pk=tenant.pk).update(is_active=True)
    services.user_deactivate(tenant=tenant, actor=system_actor, user=manager)
    assert http.get(authorize_path(entra)).status_code in (302, 403)
    assert not Grant.objects.exists()


def test_check9_consent_post_without_csrf_token_is_refused(entra: OAuthClient, manager: User) -> None:
    http = tenant_client(manager.tenant)
    http.force_login(manager, backend="directory.backends.TenantModelBackend")
    page = http.get(authorize_path(entra))
    fields = {k: v for k, v in hidden_inputs(page.content.decode()).items() if k != "csrfmiddlewaretoken"}
    with http.allow_csrf_refusal():
        response = http.post("/oauth/authorize/", {**fields, "allow": "Authorize"})
    assert response.status_code == 403 and csrf_refused(response)
    assert not Grant.objects.exists()


def test_check10_consent_redirects_to_the_exact_uri_with_code_state_and_iss(
    entra: OAuthClient, manager_http: Client, manager: User, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = consent(manager_http, entra)
    assert response.status_code == 302
    location = response["Location"]
    assert location.split("?")[0] == ENTRA_REDIRECT
    params = query(location)
    assert set(params) == {"code", "state", "iss"}
    assert params["state"] == STATE
    assert params["iss"] == "http://contoso.testserver"
    grant = Grant.objects.get()
    assert grant.code != params["code"]  # stored as a digest only
    assert grant.user == User.objects.get(tenant=tenant, role=User.Role.SERVICE)
    stored_consent = Consent.objects.get()
    assert (stored_consent.tenant, stored_consent.approved_by) == (tenant, manager)
    assert not Consent.objects.filter(tenant=other_tenant).exists()


def test_deny_returns_access_denied_without_a_code(
    entra: OAuthClient, manager_http: Client, tenant: Tenant
) -> None:
    response = consent(manager_http, entra, allow=False)
    params = query(response["Location"])
    assert params["error"] == "access_denied" and params["state"] == STATE and "code" not in params
    assert not Grant.objects.exists()
    assert Event.objects.filter(tenant=tenant, result="failure", detail="The manager declined.").count() == 1


def test_check11_implicit_grant_is_not_offered(entra: OAuthClient, manager_http: Client) -> None:
    response = manager_http.get(authorize_path(entra, response_type="token"))
    assert response.status_code == 302
    params = query(response["Location"])
    assert params["error"] == "unsupported_response_type"
    assert "access_token" not in response["Location"]


def test_check21_public_clients_need_s256_pkce(
    manager_http: Client, tenant: Tenant, system_actor: services.Actor
) -> None:
    from oauth.services import application_create

    application, _ = application_create(
        tenant=tenant,
        actor=system_actor,
        name="Public tool",
        redirect_uris=[ENTRA_REDIRECT],
        client_type="public",
    )
    public = OAuthClient(application, "")
    missing = manager_http.get(authorize_path(public))
    assert query(missing["Location"])["error"] == "invalid_request"
    plain = consent(manager_http, public, code_challenge="a" * 43, code_challenge_method="plain")
    assert query(plain["Location"])["error"] == "invalid_request"
    s256 = consent(manager_http, public, code_challenge="a" * 43, code_challenge_method="S256")
    assert "code" in query(s256["Location"])


def test_confidential_clients_may_omit_pkce(entra: OAuthClient, manager_http: Client) -> None:
    """Entra's Authorize button sends no code_challenge (entra-scim.md §5.4)."""
    assert code_from(consent(manager_http, entra))


def test_root_host_never_issues_codes(entra: OAuthClient, tenant: Tenant, manager: User) -> None:
    from tests.oauth.support import root_client

    http = root_client()
    http.force_login(manager, backend="directory.backends.TenantModelBackend")
    response = http.get(authorize_path(entra))
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    # With the token a root-host page gives, so the 405 is the view's and not the CSRF check's.
    forged = http.csrf_post(
        "/oauth/authorize/", {"client_id": entra.client_id, "allow": "1"}, form_path="/login/"
    )
    assert forged.status_code == 405
    assert not Grant.objects.exists()
